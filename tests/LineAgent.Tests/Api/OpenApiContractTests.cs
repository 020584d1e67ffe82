using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>
/// One valid and one invalid request to every operation of the served document; each answer's status must be one the
/// operation documents, and its body must validate (JSON Schema 2020-12) against the schema documented for that
/// status and content type. The valid request bodies must validate against the documented request schema too.
/// An operation without a hand-written case below still gets two generic requests (without the token, and a plain
/// one), so a new endpoint is checked against its own description from the day it is mapped.
/// </summary>
public sealed class OpenApiContractTests
{
    private AgentFactory _agent = null!;
    private HttpClient _api = null!;
    private OpenApiSpec _spec = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _agent = new AgentFactory();
        _api = _agent.Api();
        _spec = await OpenApiSpec.FetchAsync(_api);
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _api.Dispose();
        _agent.Dispose();
    }

    private sealed record Call(string Method, string Url, object? Body = null, string? RawBody = null, string? ContentType = null,
        string? IdempotencyKey = null, bool Anonymous = false);

    private sealed record Case(Func<Task<Call>> Valid, int ValidStatus, Func<Task<Call>> Invalid, int InvalidStatus);

    private const string Later = "2030-01-15T09:00:00Z";

    private Dictionary<string, Case> Cases() => new()
    {
        ["GetStatus"] = new(() => Get("/api/status"), 200, () => Anonymous("GET", "/api/status"), 401),
        ["SendMessage"] = new(
            () => Task.FromResult(new Call("POST", "/api/messages", new { content = "Hi Ana", recipientPhone = "+12025550102", type = "imessage" },
                IdempotencyKey: "contract-1")), 201,
            () => Task.FromResult(new Call("POST", "/api/messages", new { recipientPhone = "+12025550102" })), 400),
        ["ListMessages"] = new(() => Get($"/api/messages?status=sent,scheduled&type=imessage,sms&limit=10&from=2020-01-01T00:00:00Z&to={Later}"), 200,
            () => Get("/api/messages?limit=abc"), 400),
        ["ExportMessages"] = new(() => Get("/api/messages/export?format=ndjson&status=sent"), 200, () => Get("/api/messages/export?format=xml"), 400),
        ["GetMessage"] = new(async () => new Call("GET", $"/api/messages/{await SentAsync()}"), 200, () => Get("/api/messages/msg_nope"), 404),
        ["GetMessageEvents"] = new(async () => new Call("GET", $"/api/messages/{await SentAsync()}/events"), 200,
            () => Get("/api/messages/msg_nope/events"), 404),
        ["GetMessageReplies"] = new(async () => new Call("GET", $"/api/messages/{await SentAsync()}/replies"), 200,
            () => Get("/api/messages/msg_nope/replies"), 404),
        ["UpdateMessage"] = new(async () => new Call("PATCH", $"/api/messages/{await ScheduledAsync()}", new { content = "Edited", scheduledAt = "2030-02-01T10:00:00+01:00" }), 200,
            async () => new Call("PATCH", $"/api/messages/{await SentAsync()}", new { content = "Too late" }), 409),
        ["CancelMessage"] = new(async () => new Call("POST", $"/api/messages/{await ScheduledAsync()}/cancel"), 200,
            async () => new Call("POST", $"/api/messages/{await SentAsync()}/cancel"), 409),
        ["RetryMessage"] = new(async () => new Call("POST", $"/api/messages/{await FailedAsync()}/retry", IdempotencyKey: "contract-retry"), 201,
            async () => new Call("POST", $"/api/messages/{await SentAsync()}/retry"), 409),
        ["SendBulk"] = new(async () => new Call("POST", "/api/messages/bulk",
                new { leadIds = new[] { await LeadAsync() }, content = "Hi {{firstName}}", scheduledAt = Later }, IdempotencyKey: "contract-bulk"), 202,
            async () => new Call("POST", "/api/messages/bulk", new { leadIds = new[] { await LeadAsync() } }), 400),
        ["GetBatch"] = new(async () => new Call("GET", $"/api/batches/{await BatchAsync()}"), 200, () => Get("/api/batches/batch_nope"), 404),
        ["CancelBatch"] = new(async () => new Call("POST", $"/api/batches/{await BatchAsync()}/cancel"), 200,
            () => Task.FromResult(new Call("POST", "/api/batches/batch_nope/cancel")), 404),
        ["ListLines"] = new(() => Get("/api/lines"), 200, () => Anonymous("GET", "/api/lines"), 401),
        ["GetLine"] = new(() => Get("/api/lines/default"), 200, () => Get("/api/lines/nope"), 404),
        ["UpdateLine"] = new(() => Task.FromResult(new Call("PATCH", "/api/lines/default", new { active = true })), 200,
            () => Task.FromResult(new Call("PATCH", "/api/lines/default", new { })), 400),
        ["CheckAvailability"] = new(() => Get("/api/availability?address=%2B12025550123"), 200, () => Get("/api/availability"), 400),
        ["CheckAvailabilityMany"] = new(
            () => Task.FromResult(new Call("POST", "/api/availability", new { addresses = new[] { "+12025550123", "ana@example.com" } })), 200,
            () => Task.FromResult(new Call("POST", "/api/availability", new { addresses = Array.Empty<string>() })), 400),
        ["ListSuppressions"] = new(() => Get("/api/suppressions?limit=10"), 200, () => Get("/api/suppressions?limit=0"), 400),
        ["AddSuppression"] = new(() => Task.FromResult(new Call("POST", "/api/suppressions", new { address = "+12025550111" })), 201,
            () => Task.FromResult(new Call("POST", "/api/suppressions", new { reason = "no address" })), 400),
        ["GetSuppression"] = new(async () => new Call("GET", $"/api/suppressions/{Uri.EscapeDataString(await SuppressedAsync("+12025550112"))}"), 200,
            () => Get("/api/suppressions/%2B12025550177"), 404),
        ["RemoveSuppression"] = new(async () => new Call("DELETE", $"/api/suppressions/{Uri.EscapeDataString(await SuppressedAsync("+12025550113"))}"), 204,
            () => Task.FromResult(new Call("DELETE", "/api/suppressions/not-an-address")), 400),
        ["CreateLead"] = new(() => Task.FromResult(new Call("POST", "/api/leads", new { firstName = "Bo", phone = "+12025550131", tags = new[] { "vip" } })), 201,
            () => Task.FromResult(new Call("POST", "/api/leads", new { firstName = "Nobody" })), 400),
        ["ListLeads"] = new(() => Get("/api/leads?limit=5&tag=contract"), 200, () => Get("/api/leads?limit=abc"), 400),
        ["ImportLeads"] = new(() => Task.FromResult(new Call("POST", "/api/leads/import?tags=imported",
                RawBody: "First Name,Phone\nCy,+12025550141\n", ContentType: "text/csv")), 200,
            () => Task.FromResult(new Call("POST", "/api/leads/import", RawBody: "{}", ContentType: "application/json")), 415),
        ["GetLead"] = new(async () => new Call("GET", $"/api/leads/{await LeadAsync()}"), 200, () => Get("/api/leads/lead_nope"), 404),
        ["UpdateLead"] = new(async () => new Call("PATCH", $"/api/leads/{await LeadAsync()}", new { company = "Acme" }), 200,
            () => Task.FromResult(new Call("PATCH", "/api/leads/lead_nope", new { company = "Acme" })), 404),
        ["DeleteLead"] = new(async () => new Call("DELETE", $"/api/leads/{await NewLeadAsync("+12025550151")}"), 204,
            () => Task.FromResult(new Call("DELETE", "/api/leads/lead_nope")), 404),
        ["CreateWebhook"] = new(() => Task.FromResult(new Call("POST", "/api/webhooks", new { url = "http://127.0.0.1:9/hook" })), 201,
            () => Task.FromResult(new Call("POST", "/api/webhooks", new { url = "http://169.254.169.254/latest" })), 400),
        ["ListWebhooks"] = new(() => Get("/api/webhooks"), 200, () => Anonymous("GET", "/api/webhooks"), 401),
        ["GetWebhook"] = new(async () => new Call("GET", $"/api/webhooks/{await WebhookAsync()}"), 200, () => Get("/api/webhooks/wh_nope"), 404),
        ["DeleteWebhook"] = new(async () => new Call("DELETE", $"/api/webhooks/{await WebhookAsync(fresh: true)}"), 204,
            () => Task.FromResult(new Call("DELETE", "/api/webhooks/wh_nope")), 404),
        ["ListWebhookDeliveries"] = new(async () => new Call("GET", $"/api/webhooks/{await WebhookAsync()}/deliveries?limit=5"), 200,
            async () => new Call("GET", $"/api/webhooks/{await WebhookAsync()}/deliveries?limit=abc"), 400),
        ["PreviewBulk"] = new(async () => new Call("POST", "/api/messages/bulk/preview",
                new { leadIds = new[] { await LeadAsync() }, content = "Hi {{firstName}}", followUps = new[] { new { after = "P2D", content = "Any news?" } } }), 200,
            async () => new Call("POST", "/api/messages/bulk/preview", new { leadIds = new[] { await LeadAsync() } }), 400),
        ["GetSequence"] = new(async () => new Call("GET", $"/api/sequences/{await SequenceAsync("+12025550161")}"), 200,
            () => Get("/api/sequences/seq_nope"), 404),
        ["CancelSequence"] = new(async () => new Call("POST", $"/api/sequences/{await SequenceAsync("+12025550162")}/cancel"), 200,
            () => Task.FromResult(new Call("POST", "/api/sequences/seq_nope/cancel")), 404),
        ["PreviewTemplate"] = new(async () => new Call("POST", "/api/console/preview", new { content = "Hi {{firstName}}", leadIds = new[] { await LeadAsync() } }), 200,
            async () => new Call("POST", "/api/console/preview", new { leadIds = new[] { await LeadAsync() } }), 400),
        ["CreateConsoleLink"] = new(() => Task.FromResult(new Call("POST", "/api/console/link")), 200, () => Anonymous("POST", "/api/console/link"), 401),
        ["EndConsoleSession"] = new(() => Task.FromResult(new Call("POST", "/api/console/logout")), 204, () => Anonymous("POST", "/api/console/logout"), 401),
    };

    [Test]
    public async Task EveryOperation_ShouldAnswerAsItsDocumentSays()
    {
        var cases = Cases();
        var failures = new List<string>();
        var generic = new List<string>();
        foreach (var op in _spec.Operations.Where(o => o.Path.StartsWith("/api/", StringComparison.Ordinal)))
        {
            if (cases.TryGetValue(op.Id, out var c))
            {
                await CheckAsync(op, await c.Valid(), c.ValidStatus, failures, validRequest: true);
                await CheckAsync(op, await c.Invalid(), c.InvalidStatus, failures, validRequest: false);
            }
            else
            {
                generic.Add(op.Id);
                await CheckAsync(op, GenericCall(op, anonymous: true), 401, failures, validRequest: false);
                await CheckAsync(op, GenericCall(op, anonymous: false), null, failures, validRequest: false);
            }
        }
        TestContext.Out.WriteLine($"{cases.Count} operations with their own cases; generic requests only for: {string.Join(", ", generic)}");
        Assert.That(failures, Is.Empty, string.Join("\n\n", failures));
        Assert.That(cases.Keys.Where(k => _spec.Operations.All(o => o.Id != k)), Is.Empty, "a case for an operation the document does not have");
    }

    /// <summary>Sends <paramref name="call"/> and checks the answer against the document; <paramref name="expected"/> null: any documented status.</summary>
    private async Task CheckAsync(OpenApiOperation op, Call call, int? expected, List<string> failures, bool validRequest)
    {
        var label = $"{op} {(validRequest ? "valid" : "invalid")} {call.Method} {call.Url}";
        using var client = call.Anonymous ? _agent.CreateClient() : null;
        using var request = new HttpRequestMessage(new HttpMethod(call.Method), call.Url);
        if (call.Body is not null)
        {
            request.Content = JsonContent.Create(call.Body, options: ApiExtensions.Json);
            if (validRequest && op.RequestSchema() is { } requestSchema
                && _spec.Validate(requestSchema, JsonNode.Parse(await request.Content.ReadAsStringAsync())) is { } requestErrors)
                failures.Add($"{label}: the valid request body does not match the documented request schema:\n{requestErrors}");
        }
        else if (call.RawBody is not null)
        {
            request.Content = new StringContent(call.RawBody, Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(call.ContentType ?? "text/plain");
        }
        if (call.IdempotencyKey is not null)
            request.Headers.Add("Idempotency-Key", call.IdempotencyKey);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await (client ?? _api).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var status = (int)response.StatusCode;
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        var streaming = mediaType == "text/event-stream";
        var body = streaming ? "" : await response.Content.ReadAsStringAsync(timeout.Token);
        if (expected is not null && status != expected)
            failures.Add($"{label}: expected {expected}, got {status}: {body}");
        if (op.Responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] is not JsonObject documented)
        {
            failures.Add($"{label}: {status} is not documented ({string.Join(", ", op.Responses.Select(r => r.Key))}): {body}");
            return;
        }
        if (body.Length == 0 && !streaming)
        {
            if (documented["content"] is JsonObject { Count: > 0 } && status != 204)
                failures.Add($"{label}: {status} has documented content but the body is empty");
            return;
        }
        if (mediaType is null || documented["content"]?[mediaType] is not JsonObject media)
        {
            failures.Add($"{label}: {status} {mediaType} is not a documented content type of that response");
            return;
        }
        if (mediaType is "application/json" or "application/problem+json" && media["schema"] is JsonObject schema
            && _spec.Validate(schema, JsonNode.Parse(body)) is { } errors)
            failures.Add($"{label}: the {status} body does not match its schema:\n{errors}\n{body}");
    }

    private static Call GenericCall(OpenApiOperation op, bool anonymous)
    {
        var url = System.Text.RegularExpressions.Regex.Replace(op.Path, "{[^}]+}", "does-not-exist");
        object? body = op.RequestSchema() is null ? null : new { };
        return new Call(op.Method, url, body, Anonymous: anonymous);
    }

    private static Task<Call> Get(string url) => Task.FromResult(new Call("GET", url));

    private static Task<Call> Anonymous(string method, string url) => Task.FromResult(new Call(method, url, Anonymous: true));

    // ---- what the cases need, made through the API -------------------------------------------------------------------

    private string? _sent, _lead, _batch, _webhook;

    private async Task<string> SentAsync() => _sent ??=
        (await (await _api.SendMessageAsync(new { content = "Hi Ana", recipientPhone = "+12025550103" })).ExpectAsync(System.Net.HttpStatusCode.Created)).Str("id");

    private async Task<string> ScheduledAsync() =>
        (await (await _api.SendMessageAsync(new { content = "Later", recipientPhone = "+12025550104", scheduledAt = Later }))
            .ExpectAsync(System.Net.HttpStatusCode.Created)).Str("id");

    /// <summary>A message that failed (its address was suppressed), and the address let go again so a retry can go out.</summary>
    private async Task<string> FailedAsync()
    {
        const string address = "+12025550105";
        await SuppressedAsync(address);
        var failed = await (await _api.SendMessageAsync(new { content = "Hi", recipientPhone = address })).ExpectAsync(System.Net.HttpStatusCode.InternalServerError);
        Assert.That(failed.Str("code"), Is.EqualTo("delivery_failed"));
        (await _api.DeleteAsync($"/api/suppressions/{Uri.EscapeDataString(address)}")).EnsureSuccessStatusCode();
        return failed.Str("messageId");
    }

    private async Task<string> SuppressedAsync(string address)
    {
        (await _api.PostAsJsonAsync("/api/suppressions", new { address })).EnsureSuccessStatusCode();
        return address;
    }

    private async Task<string> LeadAsync() => _lead ??= await NewLeadAsync("+12025550121", "contract");

    private async Task<string> NewLeadAsync(string phone, string tag = "other") =>
        (await (await _api.PostAsJsonAsync("/api/leads", new { firstName = "Ana", lastName = "Ruiz", phone, tags = new[] { tag } }))
            .ExpectAsync(System.Net.HttpStatusCode.Created)).Str("id");

    private async Task<string> BatchAsync() => _batch ??=
        (await (await _api.PostAsJsonAsync("/api/messages/bulk", new { leadIds = new[] { await LeadAsync() }, content = "Hi {{firstName}}", scheduledAt = Later }))
            .ExpectAsync(System.Net.HttpStatusCode.Accepted)).Str("batchId");

    /// <summary>A message scheduled in 2030 with one follow-up: its sequence.</summary>
    private async Task<string> SequenceAsync(string phone) =>
        (await (await _api.SendMessageAsync(new
        {
            content = "Hi", recipientPhone = phone, scheduledAt = Later, followUps = new[] { new { after = "P2D", content = "Any news?" } },
        })).ExpectAsync(System.Net.HttpStatusCode.Created)).Str("sequenceId");

    private async Task<string> WebhookAsync(bool fresh = false)
    {
        if (!fresh && _webhook is not null)
            return _webhook;
        var id = (await (await _api.PostAsJsonAsync("/api/webhooks", new { url = "http://127.0.0.1:9/contract", events = new[] { "message.sent" } }))
            .ExpectAsync(System.Net.HttpStatusCode.Created)).Str("id");
        return fresh ? id : _webhook = id;
    }
}
