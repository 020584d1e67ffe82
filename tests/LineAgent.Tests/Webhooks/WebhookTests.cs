using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;
using LineAgent.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LineAgent.Tests.Webhooks;

/// <summary>A webhook receiver on loopback that checks Standard Webhooks signatures and can be down.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    public volatile bool Down;
    public string Secret = "";
    public ConcurrentQueue<(string Id, string Type, string MessageId, bool SignatureValid)> Accepted { get; } = new();
    public int Refused;

    private WebhookReceiver(WebApplication app) => _app = app;
    public Uri Url { get; private set; } = null!;

    public static async Task<WebhookReceiver> StartAsync()
    {
        WebhookReceiver? receiver = null;
        var (_, baseUrl) = await LoopbackServer.StartAsync(app =>
        {
            receiver = new WebhookReceiver(app);
            app.MapPost("/hook", receiver.HandleAsync);
        });
        receiver!.Url = new Uri(baseUrl, "/hook");
        return receiver;
    }

    /// <summary>While set and not completed, every request waits for it: a receiver that accepts and never answers.</summary>
    public volatile TaskCompletionSource? Hold;

    private async Task<IResult> HandleAsync(HttpRequest request)
    {
        if (Hold is { } hold)
            await hold.Task.WaitAsync(request.HttpContext.RequestAborted).ContinueWith(_ => { });
        if (Down)
        {
            Interlocked.Increment(ref Refused);
            return Results.StatusCode(503);
        }
        var body = await new StreamReader(request.Body).ReadToEndAsync();
        var id = request.Headers["webhook-id"].ToString();
        var timestamp = request.Headers["webhook-timestamp"].ToString();
        var key = Convert.FromBase64String(Secret["whsec_".Length..]);
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));
        var valid = request.Headers["webhook-signature"].ToString().Split(' ').Contains(expected);
        var json = JsonNode.Parse(body)!;
        Accepted.Enqueue((id, json.Str("type"), json["data"].Str("id"), valid && json.Str("id") == id));
        return valid ? Results.NoContent() : Results.StatusCode(401);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed class WebhookTests
{
    [Test]
    public async Task Receiver_ShouldGetEachEventOnceSigned_AndAgainAfterBeingDown_WithoutDuplicateEventIds()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var agent = new AgentFactory();
        using var api = agent.Api();
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = receiver.Url.ToString() })).ExpectAsync(HttpStatusCode.Created);
        receiver.Secret = hook.Str("secret");
        Assert.That(receiver.Secret, Does.StartWith("whsec_"));
        Assert.That((await api.GetJsonAsync($"/api/webhooks/{hook.Str("id")}")).StrOrNull("secret"), Is.Null, "the secret is shown once");
        var sender = agent.Services.GetServices<IHostedService>().OfType<WebhookSender>().Single();

        var first = await (await api.SendMessageAsync(new { content = "one", recipientPhone = "+12025550101" })).ExpectAsync(HttpStatusCode.Created);
        await Eventually.TrueAsync(() => receiver.Accepted.Count == 1, "the first event");
        Assert.That(receiver.Accepted.Single(), Is.EqualTo((receiver.Accepted.Single().Id, "message.sent", first.Str("id"), true)));

        receiver.Down = true;
        var second = await (await api.SendMessageAsync(new { content = "two", recipientPhone = "+12025550102" })).ExpectAsync(HttpStatusCode.Created);
        var cancelled = await (await api.SendMessageAsync(new { content = "three", recipientPhone = "+12025550103",
            scheduledAt = agent.Time.GetUtcNow().AddHours(2).ToString("O") })).ExpectAsync(HttpStatusCode.Created);
        var third = await (await api.SendMessageAsync(new { content = "four", recipientPhone = "+12025550104" })).ExpectAsync(HttpStatusCode.Created);
        await Eventually.TrueAsync(() => receiver.Refused >= 2, "attempts while down");

        // Down for a while: time passes over several backoff steps (5 s, 30 s, 2 min, ...).
        var downUntil = agent.Time.GetUtcNow().AddMinutes(20);
        while (agent.Time.GetUtcNow() < downUntil)
        {
            var next = await Eventually.ValueAsync(() => sender.IdleUntil, "sender idle");
            if (next > downUntil)
            {
                agent.Time.SetUtcNow(downUntil);
                break;
            }
            agent.Time.SetUtcNow(next);
            await Eventually.TrueAsync(() => sender.IdleUntil != next, "sender woke");
        }
        var log = (await api.GetItemsAsync($"/api/webhooks/{hook.Str("id")}/deliveries"))!;
        var pending = log.Where(d => d.Str("status") == "pending").ToList();
        Assert.That(pending, Has.Count.EqualTo(2));
        Assert.That(pending.Select(d => d["attempts"]!.GetValue<int>()), Is.All.GreaterThanOrEqualTo(4));
        Assert.That(pending.Select(d => d["lastStatus"]!.GetValue<int>()), Is.All.EqualTo(503));

        receiver.Down = false;
        for (var wakes = 0; receiver.Accepted.Count < 3 && wakes < 500; wakes++)
        {
            var next = await Eventually.ValueAsync(() => sender.IdleUntil, "sender idle");
            agent.Time.SetUtcNow(next);
            await Eventually.TrueAsync(() => sender.IdleUntil != next, "sender woke");
        }
        await Eventually.TrueAsync(() => receiver.Accepted.Count == 3, "the events held back");

        var accepted = receiver.Accepted.ToList();
        Assert.That(accepted.Select(a => a.Id).Distinct().Count(), Is.EqualTo(accepted.Count), "an event id arrived twice");
        Assert.That(accepted.All(a => a.SignatureValid), Is.True);
        Assert.That(accepted.Select(a => (a.Type, a.MessageId)), Is.EquivalentTo(new[]
        {
            ("message.sent", first.Str("id")), ("message.sent", second.Str("id")), ("message.sent", third.Str("id")),
        }));
        Assert.That(cancelled.Str("status"), Is.EqualTo("scheduled"));
        log = (await api.GetItemsAsync($"/api/webhooks/{hook.Str("id")}/deliveries"))!;
        Assert.That(log.Select(d => d.Str("status")), Is.All.EqualTo("delivered"));

        var newest = (await api.GetItemsAsync($"/api/webhooks/{hook.Str("id")}/deliveries?limit=1"))!;
        Assert.That(newest.Select(d => d.Str("eventId")), Is.EqualTo(new[] { log[0].Str("eventId") }), "limit=1 is the newest delivery");
        // Paged like every list: one at a time, the cursor walks the whole log once.
        var walked = new List<string>();
        string? cursor = null;
        do
        {
            var page = await api.GetJsonAsync($"/api/webhooks/{hook.Str("id")}/deliveries?limit=1" + (cursor is null ? "" : $"&cursor={cursor}"));
            walked.AddRange(page["items"]!.AsArray().Select(d => d.Str("eventId")));
            cursor = page["nextCursor"]?.GetValue<string>();
        } while (cursor is not null && walked.Count < 10);
        Assert.That(walked, Is.EqualTo(log.Select(d => d.Str("eventId"))));
        await (await api.GetAsync($"/api/webhooks/{hook.Str("id")}/deliveries?cursor=abc")).ExpectAsync(HttpStatusCode.BadRequest);
        foreach (var bad in new[] { "0", "501", "-3" })
        {
            var problem = await (await api.GetAsync($"/api/webhooks/{hook.Str("id")}/deliveries?limit={bad}")).ExpectAsync(HttpStatusCode.BadRequest);
            Assert.That((problem.ProblemFields(), problem.ProblemCodes()), Is.EqualTo((new[] { "limit" }, new[] { "invalid_filter" })), $"limit={bad}");
        }
    }

    [Test]
    public async Task Subscriptions_ShouldBeListedNewestFirst_OnePageAtATime()
    {
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "true" });
        using var api = agent.Api();
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
            ids.Add((await (await api.PostAsJsonAsync("/api/webhooks", new { url = $"http://127.0.0.1:9/hook{i}" })).ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var first = await api.GetJsonAsync("/api/webhooks?limit=2");
        Assert.That(first["items"]!.AsArray().Select(w => w.Str("id")), Is.EqualTo(new[] { ids[2], ids[1] }));
        Assert.That(first["items"]!.AsArray().Select(w => w!["secret"]), Is.All.Null, "no secrets in the list");
        var second = await api.GetJsonAsync($"/api/webhooks?limit=2&cursor={first.Str("nextCursor")}");
        Assert.That(second["items"]!.AsArray().Select(w => w.Str("id")), Is.EqualTo(new[] { ids[0] }));
        Assert.That(second["nextCursor"], Is.Null);
    }

    [Test]
    public async Task EventsOfOneMessage_ShouldArriveInOrder_AndOnlyTheSubscribedTypes()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "true" });
        using var api = agent.Api();
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = receiver.Url.ToString(), events = new[] { "message.failed" } }))
            .ExpectAsync(HttpStatusCode.Created);
        receiver.Secret = hook.Str("secret");
        await (await api.SendMessageAsync(new { content = "ok", recipientPhone = "+12025550101" })).ExpectAsync(HttpStatusCode.Created);
        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550102" })).ExpectAsync(HttpStatusCode.Created);
        var failed = await (await api.SendMessageAsync(new { content = "blocked", recipientPhone = "+12025550102" })).ExpectAsync(HttpStatusCode.InternalServerError);

        await Eventually.TrueAsync(() => receiver.Accepted.Count == 1, "the failed event");
        Assert.That(receiver.Accepted.Single().Type, Is.EqualTo("message.failed"));
        Assert.That(receiver.Accepted.Single().MessageId, Is.EqualTo(failed.Str("messageId")));

        var bad = await (await api.PostAsJsonAsync("/api/webhooks", new { url = "ftp://x", events = new[] { "message.nope" }, secret = "plain" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(bad.ProblemFields(), Is.EquivalentTo(new[] { "url", "events", "secret" }));
    }

    /// <summary>A *.localhost name is loopback (RFC 6761) at delivery too: glibc does not resolve it, and such a subscription was retried for days (probe).</summary>
    [Test]
    public async Task ALocalhostSubdomain_ShouldBeDeliveredToLoopback()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "true" });
        using var api = agent.Api();
        var url = new UriBuilder(receiver.Url) { Host = "hooks.localhost" }.Uri;
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = url.ToString(), events = new[] { "message.sent" } }))
            .ExpectAsync(HttpStatusCode.Created);
        receiver.Secret = hook.Str("secret");
        var sent = await (await api.SendMessageAsync(new { content = "ok", recipientPhone = "+12025550103" })).ExpectAsync(HttpStatusCode.Created);

        await Eventually.TrueAsync(() => receiver.Accepted.Count == 1, "the sent event at hooks.localhost");
        Assert.That(receiver.Accepted.Single(), Is.EqualTo((receiver.Accepted.Single().Id, "message.sent", sent.Str("id"), true)));
    }

    [Test]
    public async Task AReceiverThatNeverAnswers_ShouldNotHoldUpAnotherSubscription()
    {
        await using var stuck = await WebhookReceiver.StartAsync();
        await using var healthy = await WebhookReceiver.StartAsync();
        stuck.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "true", ["Webhooks:Timeout"] = "00:02:00" });
        using var api = agent.Api();
        foreach (var receiver in new[] { stuck, healthy })
            receiver.Secret = (await (await api.PostAsJsonAsync("/api/webhooks", new { url = receiver.Url.ToString(), events = new[] { "message.sent" } }))
                .ExpectAsync(HttpStatusCode.Created)).Str("secret");

        for (var i = 0; i < 5; i++)
            await (await api.SendMessageAsync(new { content = $"m{i}", recipientPhone = $"+1202555010{i}" })).ExpectAsync(HttpStatusCode.Created);

        // Before, the stuck receiver's first attempt (2 min timeout) came before any of these, one event after another.
        await Eventually.TrueAsync(() => healthy.Accepted.Count == 5, "the healthy subscription to get all five events");
        Assert.That(stuck.Accepted, Is.Empty);
        // While the stuck loop waits, the worker sleeps (the fake clock stands still): it does not spin on the stuck
        // subscription's due events, which its own loop is sending.
        var sender = agent.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<LineAgent.Webhooks.WebhookSender>().Single();
        await Eventually.TrueAsync(() => sender.SleepingUntil is { } until && until > agent.Time.GetUtcNow(), "the worker to sleep while the stuck loop waits");
        stuck.Hold.SetResult();
        await Eventually.TrueAsync(() => stuck.Accepted.Count == 5, "the stuck one to get them once it answers");
    }

    [Test]
    public async Task AnEventPastGiveUpAfter_ShouldStillGetTheWholeBackoffSeries()
    {
        // An event can wait days behind an earlier one of its message; it was given up at its first failure after that.
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Down = true;
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "true" });
        using var api = agent.Api();
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = receiver.Url.ToString(), events = new[] { "message.sent" } }))
            .ExpectAsync(HttpStatusCode.Created);
        receiver.Secret = hook.Str("secret");
        await (await api.SendMessageAsync(new { content = "late", recipientPhone = "+12025550109" })).ExpectAsync(HttpStatusCode.Created);
        // Recorded, not just answered: the fake clock moves only once the attempt's backoff is set from it.
        Task<List<JsonObject>?> Log() => api.GetItemsAsync($"/api/webhooks/{hook.Str("id")}/deliveries");
        await Eventually.ValueAsync(Log, l => l.Count == 1 && l[0]["attempts"]!.GetValue<int>() == 1, "the first attempt, recorded");

        agent.Time.Advance(TimeSpan.FromDays(4)); // past Webhooks:GiveUpAfter (3 days)
        // The second attempt recorded (not just answered by the receiver): the clock moves on only after that.
        var log = await Eventually.ValueAsync(Log, l => l.Single()["attempts"]!.GetValue<int>() == 2, "an attempt after GiveUpAfter, recorded");
        Assert.That(log.Single().Str("status"), Is.EqualTo("pending"), "2 of 8 attempts: not given up yet");

        receiver.Down = false;
        agent.Time.Advance(TimeSpan.FromMinutes(1));
        await Eventually.TrueAsync(() => receiver.Accepted.Count == 1, "delivered once the receiver is back");
    }

    /// <summary>
    /// Review: nothing deleted webhook_deliveries, each row a copy of its message (content, address) kept for ever. A settled
    /// one goes Webhooks:KeepDeliveriesFor (30 days) after its last attempt; one still pending stays.
    /// </summary>
    [Test]
    public async Task ASettledDelivery_ShouldBeDeletedAfterKeepDeliveriesFor_APendingOneKept()
    {
        await using var up = await WebhookReceiver.StartAsync();
        await using var down = await WebhookReceiver.StartAsync();
        down.Down = true;
        using var agent = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "true" });
        using var api = agent.Api();
        var delivered = await (await api.PostAsJsonAsync("/api/webhooks", new { url = up.Url.ToString(), events = new[] { "message.sent" } }))
            .ExpectAsync(HttpStatusCode.Created);
        up.Secret = delivered.Str("secret");
        var pending = await (await api.PostAsJsonAsync("/api/webhooks", new { url = down.Url.ToString(), events = new[] { "message.sent" } }))
            .ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(new { content = "kept a while", recipientPhone = "+12025550108" })).ExpectAsync(HttpStatusCode.Created);
        Task<List<JsonObject>?> Log(JsonObject hook) => api.GetItemsAsync($"/api/webhooks/{hook.Str("id")}/deliveries");
        await Eventually.ValueAsync(() => Log(delivered), l => l.Count == 1 && l[0].Str("status") == "delivered", "delivered");
        await Eventually.ValueAsync(() => Log(pending), l => l.Count == 1 && l[0]["attempts"]!.GetValue<int>() == 1, "the first failed attempt, recorded");

        agent.Time.Advance(TimeSpan.FromDays(29));
        var maintenance = agent.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<LineAgent.Scheduling.Maintenance>().Single();
        await Eventually.TrueAsync(() => maintenance.SleepingUntil > agent.Time.GetUtcNow(), "a maintenance pass after 29 days");
        Assert.That(await Log(delivered), Has.Count.EqualTo(1), "kept for 30 days");

        agent.Time.Advance(TimeSpan.FromDays(2));
        await Eventually.ValueAsync(() => Log(delivered), l => l.Count == 0, "deleted after 30 days");
        Assert.That(await Log(pending), Has.Count.EqualTo(1), "a pending (or just given up) delivery stays");
    }

    [Test]
    public void Signature_ShouldMatchTheStandardWebhooksExample()
    {
        // The example of the Standard Webhooks specification.
        var signature = WebhookSignature.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
            "{\"test\": 2432232314}");
        Assert.That(signature, Is.EqualTo("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }
}

public sealed class WebhookMessagesEventsTests
{
    [Test]
    public async Task FallbackAndReply_ShouldBeDeliveredAsWebhookEvents_InOrderPerMessage()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { nonImessage = new[] { "+12025550199" }, confirmDelayMs = 100, deliverDelayMs = 100 });
        await using var receiver = await WebhookReceiver.StartAsync();
        using var agent = new AgentFactory(settings: messages.Settings(), systemClock: true);
        using var api = agent.Api();
        receiver.Secret = (await (await api.PostAsJsonAsync("/api/webhooks", new { url = receiver.Url.ToString() })).ExpectAsync(HttpStatusCode.Created)).Str("secret");

        var sms = await (await api.SendMessageAsync(new { content = "Are you free?", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.Created);
        var imessageId = sms.Str("fallbackFrom");
        messages.Incoming("+12025550199", "Yes, Friday works", "SMS");

        await Eventually.TrueAsync(() => receiver.Accepted.Any(a => a.Type == "message.reply"), "the reply event", TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(() => receiver.Accepted.Any(a => a.Type == "message.delivered" && a.MessageId == sms.Str("id")), "delivered", TimeSpan.FromSeconds(30));
        var events = receiver.Accepted.ToList();
        Assert.That(events.All(e => e.SignatureValid), Is.True);
        Assert.That(events.Where(e => e.MessageId == imessageId).Select(e => e.Type), Is.EqualTo(new[] { "message.failed" }));
        Assert.That(events.Where(e => e.MessageId == sms.Str("id")).Select(e => e.Type),
            Is.EqualTo(new[] { "message.fallback", "message.sent", "message.delivered" }), "in order per message");
        Assert.That(events.Select(e => e.Id), Is.Unique);
    }
}
