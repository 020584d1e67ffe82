using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace LineAgent.Tests.Support;

/// <summary>
/// An HTTP server on loopback that answers like Twilio's Messages API (2010-04-01): Basic auth with
/// the account SID and token, form-encoded create, JSON resources and Twilio's error bodies.
/// Behaviour by recipient: see the constants.
/// </summary>
public sealed class TwilioStandIn : IAsyncDisposable
{
    public const string Sid = "AC00000000000000000000000000000001";
    public const string Token = "twilio-test-token";
    public const string From = "+12025550000";

    public const string InvalidNumber = "+12025550111";      // 400, code 21211
    public const string Unsubscribed = "+12025550161";       // 400, code 21610
    public const string RateLimitedTwice = "+12025550429";   // 429 / 20429 twice, then created
    public const string ServerError = "+12025550150";        // 500 after reading the request
    public const string Hangs = "+12025550198";              // never answers (client timeout)
    public const string GatewayHtml = "+12025550153";        // 503 with an HTML body (a proxy's page, not Twilio's JSON), after reading the request
    public const string ForbiddenHtml = "+12025550403";      // 403 with an HTML body (a proxy or firewall refusing it)
    public const string ProxyLoginHtml = "+12025550407";     // 407 with an HTML body (a proxy that wants a login)
    public const string RateLimitedHtmlOnce = "+12025550430"; // 429 with an HTML body once, then created
    public const string GatewayJson404 = "+12025550404";     // 404 with an API gateway's JSON (Kong: {"message":"no Route matched with those values"})
    public const string Twilio20404 = "+12025550424";        // Twilio's own 404 / 20404 (a proxy forwarding under a wrong path)
    public const string Redirects = "+12025550301";          // 301 to the https URL (a proxy that redirects http to https)
    public const string CreatedWithoutSid = "+12025550201";  // 201 with {} (a gateway's answer, not Twilio's resource)
    public const string RefusedFrom = "+12025550659";        // as From: 400, code 21659 (not a Twilio phone number)

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, int> _rateLimited = new();

    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>The account's token was rotated: every POST is refused 401 / 20003, as for a wrong token, until cleared.</summary>
    public volatile bool TokenRevoked;

    /// <summary>Status (and error code) the fetch endpoint reports per SID; "queued" until set.</summary>
    public ConcurrentDictionary<string, (string Status, int? ErrorCode)> Statuses { get; } = new();

    public sealed record Request(string Method, string Path, string? Authorization, IReadOnlyDictionary<string, string> Form);

    private TwilioStandIn(WebApplication app) => _app = app;

    public Uri BaseUrl { get; private set; } = null!;

    public static async Task<TwilioStandIn> StartAsync()
    {
        TwilioStandIn? standIn = null;
        var (app, baseUrl) = await LoopbackServer.StartAsync(app =>
        {
            standIn = new TwilioStandIn(app);
            // A proxy in front that sends every request elsewhere (http to https).
            app.Use(async (http, next) =>
            {
                if (!standIn.RedirectEverything)
                {
                    await next(http);
                    return;
                }
                standIn.Requests.Enqueue(new Request(http.Request.Method, http.Request.Path, http.Request.Headers.Authorization, new Dictionary<string, string>()));
                http.Response.StatusCode = 301;
                http.Response.Headers.Location = "https://" + http.Request.Host + http.Request.Path + http.Request.QueryString;
            });
            app.MapPost("/2010-04-01/Accounts/{sid}/Messages.json", standIn.CreateAsync);
            app.MapGet("/2010-04-01/Accounts/{sid}/Messages/{messageSid}.json", standIn.Fetch);
            app.MapGet("/2010-04-01/Accounts/{sid}/Messages.json", standIn.List);
            app.MapGet("/2010-04-01/Accounts/{sid}.json", (string sid) => Results.Json(new { sid, friendly_name = "Test account", status = "active" }));
            // messaging.twilio.com (the agent sends every *.twilio.com request to Twilio:BaseUrl).
            app.MapGet("/v1/Services/{serviceSid}/PhoneNumbers", standIn.ServicePhoneNumbers);
            app.MapGet("/v1/Services/{serviceSid}/ShortCodes", standIn.ServiceShortCodeList);
        });
        standIn!.BaseUrl = baseUrl;
        return standIn;
    }

    public Dictionary<string, string?> Settings() => new()
    {
        ["Agent:DryRun"] = "false",
        ["Twilio:AccountSid"] = Sid,
        ["Twilio:AuthToken"] = Token,
        ["Twilio:BaseUrl"] = BaseUrl.ToString(),
        ["Twilio:Timeout"] = "00:00:02",
        ["Twilio:StatusPollInterval"] = "00:00:00.200",
        ["Lines:0:Id"] = "default",
        ["Lines:0:IMessage:Enabled"] = "false",
        ["Lines:0:Sms:Via"] = "twilio",
        ["Lines:0:Sms:From"] = From,
        ["Lines:0:Pacing:Enabled"] = "false",
        ["Resilience:RetryBaseDelay"] = "00:00:00.100",
    };

    private async Task<IResult> CreateAsync(string sid, HttpContext http)
    {
        var form = (await http.Request.ReadFormAsync()).ToDictionary(f => f.Key, f => f.Value.ToString());
        // Its answer to the credentials is decided before the request is logged: a test that sees the request and then
        // changes TokenRevoked changes the next answer, not this one.
        var expected = "Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes($"{Sid}:{Token}"));
        var refused = sid != Sid || http.Request.Headers.Authorization != expected || TokenRevoked;
        Requests.Enqueue(new Request("POST", http.Request.Path, http.Request.Headers.Authorization, form));
        if (refused)
            return Error(401, 20003, "Authenticate");
        var to = form.GetValueOrDefault("To");
        if (form.GetValueOrDefault("From") == RefusedFrom)
            return Error(400, 21659, $"Source number {RefusedFrom} is not a Twilio phone number, verified outgoing caller id or alphanumeric sender ID");
        switch (to)
        {
            case InvalidNumber:
                return Error(400, 21211, $"Invalid 'To' Phone Number: {to}");
            case Unsubscribed:
                return Error(400, 21610, "Attempt to send to unsubscribed recipient");
            case RateLimitedTwice when _rateLimited.AddOrUpdate(to, 1, (_, n) => n + 1) <= 2:
                return Error(429, 20429, "Too Many Requests");
            case ServerError:
                return Error(500, 20500, "Internal Server Error");
            case ForbiddenHtml:
                return Results.Content("<html><body><h1>403 Forbidden</h1><p>Blocked by policy.</p></body></html>", "text/html", Encoding.UTF8, 403);
            case ProxyLoginHtml:
                return Results.Content("<html><body><h1>407 Proxy Authentication Required</h1></body></html>", "text/html", Encoding.UTF8, 407);
            case GatewayJson404:
                return Results.Json(new { message = "no Route matched with those values" }, statusCode: 404);
            case Twilio20404:
                return Error(404, 20404, "The requested resource /2010-04-01/Accounts/AC00/Messages.json was not found");
            case RateLimitedHtmlOnce when _rateLimited.AddOrUpdate(to, 1, (_, n) => n + 1) <= 1:
                return Results.Content("<html><body>Too many requests</body></html>", "text/html", Encoding.UTF8, 429);
            case Redirects:
                http.Response.Headers.Location = "https://" + http.Request.Host + http.Request.Path;
                return Results.StatusCode(301);
            case CreatedWithoutSid:
                return Results.Json(new Dictionary<string, object?>(), statusCode: 201);
            case GatewayHtml:
                return Results.Content("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", "text/html", Encoding.UTF8, 503);
            case Hangs:
                await Task.Delay(TimeSpan.FromMinutes(5), http.RequestAborted).ContinueWith(_ => { });
                return Results.StatusCode(504);
        }
        var messageSid = "SM" + Guid.NewGuid().ToString("N");
        Statuses[messageSid] = ("queued", null);
        return Results.Json(Resource(messageSid, form), statusCode: 201);
    }

    /// <summary>Inbound messages the list endpoint reports (to any number), as Twilio keeps them.</summary>
    public ConcurrentQueue<Dictionary<string, object?>> Inbound { get; } = new();

    public void AddInbound(string from, string body, DateTimeOffset sent, string to = From) => Inbound.Enqueue(new()
    {
        ["sid"] = "SM" + Guid.NewGuid().ToString("N"), ["account_sid"] = Sid, ["from"] = from, ["to"] = to, ["body"] = body,
        ["direction"] = "inbound", ["status"] = "received", ["num_segments"] = "1", ["api_version"] = "2010-04-01",
        ["date_sent"] = sent.ToString("R"), ["date_created"] = sent.ToString("R"), ["date_updated"] = sent.ToString("R"),
    });

    /// <summary>
    /// GET Messages.json: one page, "sorted by DateSent, with the most recent messages appearing first" (Twilio's Message
    /// resource, Read multiple Message resources); filtered by To.
    /// </summary>
    /// <summary>While set, every request is answered 301 to its https URL.</summary>
    public volatile bool RedirectEverything;

    /// <summary>How long the list endpoint takes to answer (a slow network).</summary>
    public TimeSpan ListDelay;

    private async Task<IResult> List(string sid, HttpContext http)
    {
        if (ListDelay > TimeSpan.Zero)
            await Task.Delay(ListDelay, http.RequestAborted);
        Requests.Enqueue(new Request("GET", http.Request.Path, http.Request.Headers.Authorization, new Dictionary<string, string>()));
        var to = http.Request.Query["To"].ToString();
        var items = Inbound.Where(m => to.Length == 0 || (string?)m["to"] == to)
            .OrderByDescending(m => DateTimeOffset.Parse((string)m["date_sent"]!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        return Results.Json(new Dictionary<string, object?>
        {
            ["messages"] = items, ["page"] = 0, ["page_size"] = 100, ["start"] = 0, ["end"] = Math.Max(0, items.Count - 1),
            ["uri"] = http.Request.Path + http.Request.QueryString, ["first_page_uri"] = http.Request.Path.ToString(),
            ["next_page_uri"] = null, ["previous_page_uri"] = null,
        });
    }

    /// <summary>The phone numbers of each Messaging Service (its sender pool); a service not here answers 404.</summary>
    public ConcurrentDictionary<string, string[]> ServiceNumbers { get; } = new();

    /// <summary>The short codes of each Messaging Service in <see cref="ServiceNumbers"/> (none unless set).</summary>
    public ConcurrentDictionary<string, string[]> ServiceShortCodes { get; } = new();

    private IResult ServicePhoneNumbers(string serviceSid, HttpContext http) =>
        ServiceList(serviceSid, http, "PhoneNumbers", "phone_numbers", "PN", "phone_number", _ => ServiceNumbers.GetValueOrDefault(serviceSid));

    /// <summary>The short-code list answers 500 while set.</summary>
    public volatile bool ShortCodesFail;

    private IResult ServiceShortCodeList(string serviceSid, HttpContext http) =>
        ServiceList(serviceSid, http, "ShortCodes", "short_codes", "SC", "short_code", _ => ServiceShortCodes.GetValueOrDefault(serviceSid) ?? [],
            fail: ShortCodesFail);

    /// <summary>
    /// GET messaging.twilio.com/v1/Services/{sid}/PhoneNumbers or /ShortCodes: Twilio's v1 list shape (the records under
    /// the `meta.key` name, paging in `meta`), one page; fields as in Twilio's Messaging Service PhoneNumber and
    /// ShortCode resources.
    /// </summary>
    private IResult ServiceList(string serviceSid, HttpContext http, string list, string key, string sidPrefix, string field,
        Func<string, string[]?> items, bool fail = false)
    {
        Requests.Enqueue(new Request("GET", http.Request.Path, http.Request.Headers.Authorization, new Dictionary<string, string>()));
        if (fail)
            return Error(500, 20500, "Internal Server Error");
        var expected = "Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes($"{Sid}:{Token}"));
        if (http.Request.Headers.Authorization != expected)
            return Error(401, 20003, "Authenticate");
        if (!ServiceNumbers.ContainsKey(serviceSid) || items(serviceSid) is not { } values)
            return Error(404, 20404, $"The requested resource /Services/{serviceSid}/{list} was not found");
        var url = $"https://messaging.twilio.com/v1/Services/{serviceSid}/{list}?PageSize=50&Page=0";
        return Results.Json(new Dictionary<string, object?>
        {
            [key] = values.Select((n, i) => new Dictionary<string, object?>
            {
                ["sid"] = $"{sidPrefix}{i:x32}", ["account_sid"] = Sid, ["service_sid"] = serviceSid, [field] = n,
                ["country_code"] = "US", ["capabilities"] = new[] { "SMS", "MMS" },
                ["date_created"] = "2026-01-01T00:00:00Z", ["date_updated"] = "2026-01-01T00:00:00Z",
                ["url"] = $"https://messaging.twilio.com/v1/Services/{serviceSid}/{list}/{sidPrefix}{i:x32}",
            }).ToList(),
            ["meta"] = new Dictionary<string, object?>
            {
                ["page"] = 0, ["page_size"] = 50, ["first_page_url"] = url, ["previous_page_url"] = null, ["url"] = url,
                ["next_page_url"] = null, ["key"] = key,
            },
        });
    }

    private IResult Fetch(string sid, string messageSid, HttpContext http)
    {
        Requests.Enqueue(new Request("GET", http.Request.Path, http.Request.Headers.Authorization, new Dictionary<string, string>()));
        if (!Statuses.TryGetValue(messageSid, out var s))
            return Error(404, 20404, $"The requested resource {http.Request.Path} was not found");
        return Results.Json(new Dictionary<string, object?>
        {
            ["sid"] = messageSid, ["account_sid"] = Sid, ["status"] = s.Status, ["error_code"] = s.ErrorCode,
            ["error_message"] = s.ErrorCode is null ? null : "Unknown destination handset",
        });
    }

    private static Dictionary<string, object?> Resource(string messageSid, IReadOnlyDictionary<string, string> form) => new()
    {
        ["sid"] = messageSid, ["account_sid"] = Sid, ["to"] = form.GetValueOrDefault("To"), ["from"] = form.GetValueOrDefault("From"),
        ["messaging_service_sid"] = form.GetValueOrDefault("MessagingServiceSid"), ["body"] = form.GetValueOrDefault("Body"),
        ["status"] = "queued", ["num_segments"] = "1", ["direction"] = "outbound-api", ["api_version"] = "2010-04-01",
        ["date_created"] = DateTimeOffset.UtcNow.ToString("R"), ["error_code"] = null, ["error_message"] = null,
        ["uri"] = $"/2010-04-01/Accounts/{Sid}/Messages/{messageSid}.json",
    };

    private static IResult Error(int status, int code, string message) => Results.Json(new
    {
        code, message, more_info = $"https://www.twilio.com/docs/errors/{code}", status,
    }, statusCode: status);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
