using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LineAgent.Tests.Support;
using LineAgent.WebConsole;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.WebConsole;

/// <summary>The console's sign-in and the API's cookie rules, over HTTP against the real agent (no browser needed).</summary>
public sealed partial class ConsoleSessionTests
{
    private TempDir _dir = null!;
    private AgentProcess _agent = null!;
    private HttpClient _api = null!;

    [GeneratedRegex("<meta name=\"lineagent-csrf\" content=\"([^\"]+)\">")]
    private static partial Regex CsrfMeta();

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _dir = new TempDir();
        _agent = await AgentProcess.StartAsync(_dir.Path, args: ["--dry-run"]);
        _api = _agent.Api();
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _api.Dispose();
        _agent.Dispose();
        _dir.Dispose();
    }

    /// <summary>A client like a browser: its own cookie jar, no Authorization header, no redirects followed.</summary>
    private HttpClient Browser(CookieContainer jar) =>
        new(new HttpClientHandler { CookieContainer = jar, AllowAutoRedirect = false }) { BaseAddress = _agent.BaseAddress };

    private async Task<string> LinkAsync()
    {
        var link = await (await _api.PostAsync("/api/console/link", null)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(DateTimeOffset.Parse(link.Str("expiresAt")) - DateTimeOffset.UtcNow, Is.LessThanOrEqualTo(TimeSpan.FromMinutes(1)));
        return link.Str("url");
    }

    /// <summary>Signs a new browser in; returns its client and the page's anti-forgery token.</summary>
    private async Task<(HttpClient Client, string Csrf)> SignedInAsync()
    {
        var jar = new CookieContainer();
        var client = Browser(jar);
        var login = await client.GetAsync(await LinkAsync());
        Assert.That(login.StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
        var page = await client.GetStringAsync("/");
        return (client, CsrfMeta().Match(page).Groups[1].Value);
    }

    private static HttpRequestMessage Post(string path, object body, string? csrf = null, string? origin = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(System.Text.Json.JsonSerializer.Serialize(body), Encoding.UTF8, "application/json") };
        if (csrf is not null) request.Headers.Add(ConsoleSessions.CsrfHeader, csrf);
        if (origin is not null) request.Headers.Add("Origin", origin);
        return request;
    }

    [Test]
    public async Task Pages_WithoutASession_ShouldSayHowToOpenTheConsole()
    {
        using var client = Browser(new CookieContainer());
        foreach (var path in new[] { "/", "/leads", "/messages", "/batches/batch_x", "/lines" })
        {
            var response = await client.GetAsync(path);
            var html = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), path);
            Assert.That(html, Does.Contain("lineagent open").And.Contain("not signed in"), path);
            Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/html"));
            Assert.That(response.Headers.GetValues("Content-Security-Policy").Single(), Does.Contain("script-src 'self'"));
        }
        Assert.That((await client.GetAsync("/api/status")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task Assets_ShouldBeOnlyTheScriptsStylesAndIcon_WithThePagesPolicy()
    {
        using var client = Browser(new CookieContainer());
        foreach (var part in new[] { "send.html", "leads.html", "layout.html", "nosession.html", "../appsettings.json", "%2e%2e/lineagent.dll", "" })
            Assert.That((await client.GetAsync($"/console/{part}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound), part);
        foreach (var asset in new[] { "lib.js", "app.css", "icon.svg" })
        {
            var response = await client.GetAsync($"/console/{asset}");
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), asset);
            Assert.That(response.Headers.GetValues("X-Content-Type-Options").Single(), Is.EqualTo("nosniff"));
            Assert.That(response.Headers.GetValues("Content-Security-Policy").Single(), Does.Contain("frame-ancestors 'none'").And.Contain("script-src 'self'"), asset);
        }
    }

    [Test]
    public async Task TheOneTimeLink_ShouldSetAnHttpOnlyStrictCookie_AndWorkOnlyOnce()
    {
        var url = await LinkAsync();
        Assert.That(url, Does.StartWith(_agent.BaseAddress + "login?code="));
        var jar = new CookieContainer();
        using var first = Browser(jar);
        var login = await first.GetAsync(url);
        Assert.That(login.StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
        Assert.That(login.Headers.Location!.ToString(), Is.EqualTo("/"), "the link lands on Quick Send");
        var setCookie = login.Headers.GetValues("Set-Cookie").Single();
        Assert.That(setCookie, Does.StartWith($"lineagent-session-{_agent.BaseAddress.Port}=").And.Contain("httponly").And.Contain("samesite=strict").And.Contain("path=/"));
        Assert.That(setCookie, Does.Not.Contain("expires"), "a browser session, not a stored login");

        var page = await first.GetAsync("/");
        Assert.That(page.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await page.Content.ReadAsStringAsync(), Does.Contain("<h1>Quick Send</h1>").And.Not.Contain(_agent.Token));
        Assert.That((await first.GetAsync("/api/status")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "GETs with the cookie alone");

        using var second = Browser(new CookieContainer());
        var again = await second.GetAsync(url);
        Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(again.Headers.Contains("Set-Cookie"), Is.False);
        Assert.That(await again.Content.ReadAsStringAsync(), Does.Contain("already used or has expired").And.Contain("lineagent open"));
        Assert.That((await second.GetAsync("/")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));

        Assert.That((await second.GetAsync("/login?code=made-up")).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await second.GetAsync("/login")).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task ChangesWithTheCookie_ShouldNeedTheAntiForgeryHeader_FromTheConsolesOwnOrigin()
    {
        var (client, csrf) = await SignedInAsync();
        using var _ = client;
        Assert.That(csrf, Has.Length.GreaterThan(20));
        var body = new { content = "csrf check", recipientPhone = "+12025550901", scheduledAt = "2030-01-01T09:00:00Z" };

        var none = await client.SendAsync(Post("/api/messages", body));
        var problem = await none.ExpectAsync(HttpStatusCode.Forbidden);
        Assert.That(problem.Str("code"), Is.EqualTo("csrf_failed"));
        var wrong = await client.SendAsync(Post("/api/messages", body, csrf: csrf + "x"));
        Assert.That(wrong.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden));
        var foreign = await client.SendAsync(Post("/api/messages", body, csrf: csrf, origin: "http://127.0.0.1:9"));
        Assert.That(foreign.StatusCode, Is.EqualTo(HttpStatusCode.Forbidden), "another origin, even with the token");
        var stored = await _api.GetJsonAsync("/api/messages?recipient=%2B12025550901");
        Assert.That(stored["items"]!.AsArray(), Is.Empty, "nothing refused was stored");

        var ok = await client.SendAsync(Post("/api/messages", body, csrf: csrf, origin: _agent.BaseAddress.ToString().TrimEnd('/')));
        var message = await ok.ExpectAsync(HttpStatusCode.Created);
        Assert.That(message.Str("status"), Is.EqualTo("scheduled"));
        var cancel = new HttpRequestMessage(HttpMethod.Post, $"/api/messages/{message.Str("id")}/cancel");
        cancel.Headers.Add(ConsoleSessions.CsrfHeader, csrf);
        Assert.That((await client.SendAsync(cancel)).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        // The bearer token keeps working for tools, with or without a cookie; a wrong one is still a 401.
        Assert.That((await _api.SendMessageAsync(new { content = "tool", recipientPhone = "+12025550902", scheduledAt = "2030-01-01T09:00:00Z" })).StatusCode,
            Is.EqualTo(HttpStatusCode.Created));
        var badBearer = new HttpRequestMessage(HttpMethod.Get, "/api/status");
        badBearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "nope");
        Assert.That((await client.SendAsync(badBearer)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "a wrong token is not rescued by the cookie");

        // A session cannot mint links; signing out ends it.
        var link = new HttpRequestMessage(HttpMethod.Post, "/api/console/link");
        link.Headers.Add(ConsoleSessions.CsrfHeader, csrf);
        Assert.That((await (await client.SendAsync(link)).ExpectAsync(HttpStatusCode.Forbidden)).Str("code"), Is.EqualTo("token_required"));
        var logout = new HttpRequestMessage(HttpMethod.Post, "/api/console/logout");
        logout.Headers.Add(ConsoleSessions.CsrfHeader, csrf);
        Assert.That((await client.SendAsync(logout)).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        Assert.That((await client.GetAsync("/api/status")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await client.GetAsync("/")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
    }

    [Test]
    public async Task UnderAnotherHostName_TheCookieAndTheLink_ShouldNotWork()
    {
        // DNS rebinding: a page of evil.example, its name now resolving to 127.0.0.1, talks to the agent with Host: evil.example.
        // Refused (400 invalid_host) by the agent's Host guard before the console's own checks.
        // (HttpClient's jar still sends the 127.0.0.1 cookie here, which a browser would not: the test is stricter than the attack.)
        var (client, csrf) = await SignedInAsync();
        using var _ = client;
        var port = _agent.BaseAddress.Port;
        HttpRequestMessage Under(string host, HttpMethod method, string path)
        {
            var request = new HttpRequestMessage(method, path);
            request.Headers.Host = $"{host}:{port}";
            return request;
        }

        Assert.That((await client.SendAsync(Under("evil.example", HttpMethod.Get, "/api/status"))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await client.SendAsync(Under("evil.example", HttpMethod.Get, "/api/events/stream"))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var page = await client.SendAsync(Under("evil.example", HttpMethod.Get, "/"));
        Assert.That(page.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await page.Content.ReadAsStringAsync(), Does.Not.Contain(csrf));
        var change = Under("evil.example", HttpMethod.Post, "/api/messages");
        change.Headers.Add(ConsoleSessions.CsrfHeader, csrf);
        change.Headers.Add("Origin", $"http://evil.example:{port}");
        change.Content = new StringContent("{\"content\":\"x\",\"recipientPhone\":\"+12025550904\"}", Encoding.UTF8, "application/json");
        Assert.That((await client.SendAsync(change)).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await client.SendAsync(Under("localhost", HttpMethod.Get, "/api/status"))).StatusCode, Is.EqualTo(HttpStatusCode.OK), "localhost is fine");
        Assert.That((await client.SendAsync(Under("127.0.0.1", HttpMethod.Get, "/api/status"))).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        // The link is refused under another name, and not spent by it.
        var url = new Uri(await LinkAsync());
        using var browser = Browser(new CookieContainer());
        var rebound = await browser.SendAsync(Under("evil.example", HttpMethod.Get, url.PathAndQuery));
        Assert.That(rebound.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(rebound.Headers.Contains("Set-Cookie"), Is.False);
        Assert.That((await browser.GetAsync(url)).StatusCode, Is.EqualTo(HttpStatusCode.Redirect), "the user's link still works");

        // The agent's Host guard answers before the session or the token is looked at: with the token too (a name of this
        // Mac can be added with Api:AllowedHosts; HostGuardTests).
        Assert.That((await _api.SendAsync(Under("evil.example", HttpMethod.Get, "/api/status"))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task TheEventStream_ShouldCarryEachCommittedChange_WithTheCookieOrTheToken()
    {
        var (client, _) = await SignedInAsync();
        using var __ = client;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await client.GetAsync("/api/events/stream", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/event-stream"));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.That(await NextEventAsync(reader, cts.Token), Is.EqualTo(("ready", "{}")), "subscribed before anything is sent");

        var sent = await (await _api.SendMessageAsync(new { content = "stream me", recipientPhone = "+12025550903" })).ExpectAsync(HttpStatusCode.Created);
        var seen = new List<(string Transition, string Status)>();
        while (!seen.Any(s => s.Status == "sent"))
        {
            var (name, data) = await NextEventAsync(reader, cts.Token);
            if (name != "message") continue;
            var e = JsonNode.Parse(data)!;
            if (e["message"].Str("id") != sent.Str("id")) continue;
            seen.Add((e.Str("transition"), e["message"].Str("status")));
        }
        Assert.That(seen, Is.EqualTo(new[] { ("accept", "queued"), ("hand-off", "sending"), ("sent", "sent") }));

        using var anonymous = new HttpClient { BaseAddress = _agent.BaseAddress };
        Assert.That((await anonymous.GetAsync("/api/events/stream")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        using var tool = await _api.GetAsync("/api/events/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.That(tool.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the bearer token works for the stream too");
    }

    [Test]
    public async Task SigningOut_ShouldEndTheSessionsOpenEventStream()
    {
        var (client, csrf) = await SignedInAsync();
        using var _ = client;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var response = await client.GetAsync("/api/events/stream", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.That(await NextEventAsync(reader, cts.Token), Is.EqualTo(("ready", "{}")));

        var logout = new HttpRequestMessage(HttpMethod.Post, "/api/console/logout");
        logout.Headers.Add(ConsoleSessions.CsrfHeader, csrf);
        Assert.That((await client.SendAsync(logout)).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        // A change after the sign-out must not reach it: the stream ends (long before the 30 s ping).
        await (await _api.SendMessageAsync(new { content = "after sign-out", recipientPhone = "+12025550905", scheduledAt = "2030-01-01T09:00:00Z" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.ThrowsAsync<EndOfStreamException>(() => NextEventAsync(reader, cts.Token));
        Assert.That(cts.IsCancellationRequested, Is.False, "ended by the agent, not by the test's timeout");
    }

    private static async Task<(string Event, string Data)> NextEventAsync(StreamReader reader, CancellationToken ct)
    {
        string name = "message", data = "";
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0) return (name, data);
                continue;
            }
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) data += line[6..];
        }
        throw new EndOfStreamException("the event stream ended");
    }

    [Test]
    public void ALink_ShouldExpireAfterAMinute_AndASessionAfterItsIdleTimeout()
    {
        var time = new FakeTimeProvider(AgentFactory.Epoch);
        var sessions = new ConsoleSessions(time, Options.Create(new ConsoleOptions { SessionIdleTimeout = TimeSpan.FromHours(1) }));
        var (late, expiresAt) = sessions.CreateLink();
        Assert.That(expiresAt, Is.EqualTo(AgentFactory.Epoch.AddMinutes(1)));
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.That(sessions.Redeem(late), Is.Null, "older than a minute");

        var (code, _) = sessions.CreateLink();
        time.Advance(TimeSpan.FromSeconds(59));
        var id = sessions.Redeem(code);
        Assert.That(id, Is.Not.Null);
        Assert.That(sessions.Redeem(code), Is.Null, "once only");

        var http = new DefaultHttpContext();
        http.Connection.LocalPort = 5117;
        http.Request.Host = new HostString("127.0.0.1", 5117);
        http.Request.Headers.Cookie = $"{ConsoleSessions.CookieName(http)}={id}";
        Assert.That(sessions.Find(http), Is.Not.Null);
        var other = new DefaultHttpContext();
        other.Connection.LocalPort = 5118;
        other.Request.Host = new HostString("127.0.0.1", 5118);
        other.Request.Headers.Cookie = $"lineagent-session-5117={id}";
        Assert.That(sessions.Find(other), Is.Null, "an agent on another port reads its own cookie");
        time.Advance(TimeSpan.FromMinutes(59));
        Assert.That(sessions.Find(http), Is.Not.Null, "used within the idle timeout");
        time.Advance(TimeSpan.FromMinutes(61));
        Assert.That(sessions.Find(http), Is.Null, "idle too long");
    }

    [Test]
    public void ASessionsEndedToken_ShouldFireAtSignOut_AndWhenAStreamFindsItIdle()
    {
        var time = new FakeTimeProvider(AgentFactory.Epoch);
        var sessions = new ConsoleSessions(time, Options.Create(new ConsoleOptions { SessionIdleTimeout = TimeSpan.FromHours(1) }));
        ConsoleSession SignIn(out DefaultHttpContext http)
        {
            http = new DefaultHttpContext();
            http.Connection.LocalPort = 5117;
            http.Request.Host = new HostString("127.0.0.1", 5117);
            http.Request.Headers.Cookie = $"{ConsoleSessions.CookieName(http)}={sessions.Redeem(sessions.CreateLink().Code)}";
            return sessions.Find(http)!;
        }

        var signedOut = SignIn(out var first);
        Assert.That(sessions.IsLive(signedOut), Is.True);
        sessions.End(first);
        Assert.That(signedOut.Ended.IsCancellationRequested, Is.True, "sign-out ends what the session holds open");
        Assert.That(sessions.IsLive(signedOut), Is.False);

        var idle = SignIn(out var second);
        time.Advance(TimeSpan.FromMinutes(59));
        Assert.That(sessions.IsLive(idle), Is.True);
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.That(sessions.IsLive(idle), Is.False, "a stream's pings are not use: idle is idle");
        Assert.That(idle.Ended.IsCancellationRequested, Is.True);
        Assert.That(sessions.Find(second), Is.Null, "and it is gone");
    }
}
