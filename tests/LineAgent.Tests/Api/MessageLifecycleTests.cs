using Microsoft.Extensions.Configuration;
using System.Net;
using System.Net.Http.Json;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace LineAgent.Tests.Api;

public sealed class MessageLifecycleTests : AgentTest
{
    private static object Body(string content = "Hi Ana", string? at = null) =>
        new { content, recipientPhone = "+12025550123", recipientName = "Ana Ruiz", scheduledAt = at };

    private string InSeconds(double s) => Agent.Time.GetUtcNow().AddSeconds(s).ToString("O");

    [Test]
    public async Task SendNow_ShouldAnswer201Sent_AndWriteOneOutboxFile()
    {
        var m = await (await Client.SendMessageAsync(Body())).ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("status"), Is.EqualTo("sent"));
        Assert.That(m["dryRun"]!.GetValue<bool>(), Is.True);
        Assert.That(m.Str("type"), Is.EqualTo("imessage"));
        Assert.That(m.Str("requestedType"), Is.EqualTo("auto"));
        Assert.That(m.Str("sentAt"), Does.EndWith("Z"));
        Assert.That(Agent.OutboxFileCount(m.Str("id")), Is.EqualTo(1));
        var file = File.ReadAllText(Agent.OutboxFiles().Single());
        Assert.That(file, Does.Contain("Hi Ana").And.Contain("+12025550123"));

        var events = (await Client.GetFromJsonAsync<List<Dictionary<string, object?>>>($"/api/messages/{m.Str("id")}/events"))!;
        Assert.That(events.Select(e => e["status"]!.ToString()), Is.EqualTo(new[] { "queued", "sending", "sent" }));
    }

    [Test]
    public async Task Send_ShouldReturn400ChannelUnavailable_WhenNoChannelCanCarryIt_AndStoreNothing()
    {
        using var real = new AgentFactory(settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "false" });
        using var api = real.Api();

        var problem = await (await api.SendMessageAsync(Body())).ExpectAsync(HttpStatusCode.BadRequest);

        Assert.That(problem.Str("code"), Is.EqualTo("channel_unavailable"));
        Assert.That(problem.ProblemFields(), Is.EqualTo(new[] { "type" }));
        Assert.That(problem.Str("detail"), Does.Contain("Messages"), "it says why: no Messages.app here");
        var email = await (await api.SendMessageAsync(new { content = "hi", recipientEmail = "ana@example.com" })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(email.Str("detail"), Does.Contain("Email:Smtp:Host"));
        Assert.That((await api.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
        Assert.That(real.OutboxFiles(), Is.Empty);
    }

    [Test]
    public async Task Send_ShouldReplayFirstAnswer_WhenIdempotencyKeyRepeatsWithSameBody()
    {
        var first = await (await Client.SendMessageAsync(Body(), "key-1")).ExpectAsync(HttpStatusCode.Created);
        var again = await (await Client.SendMessageAsync(Body(), "key-1")).ExpectAsync(HttpStatusCode.Created);

        Assert.That(again.Str("id"), Is.EqualTo(first.Str("id")));
        Assert.That(again.ToJsonString(), Is.EqualTo(first.ToJsonString()));
        Assert.That(Agent.OutboxFiles(), Has.Length.EqualTo(1));
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages"), Is.EqualTo(1));
    }

    [Test]
    public async Task AnAnswerThatCannotBeKept_ShouldStillSayTheMessageWasStored_AndAReplayShouldNotSendAgain()
    {
        // The message commits, then keeping its answer for the key fails (here a trigger; on a Mac a full disk): the
        // client must not hear an error ("nothing was stored") for a message that was stored and sent.
        await using (var c = await Agent.Services.GetRequiredService<Db>().OpenAsync())
            await c.ExecuteAsync("CREATE TRIGGER refuse_answers BEFORE UPDATE OF response_status ON idempotency_keys BEGIN SELECT RAISE(ABORT, 'no room'); END");

        var first = await (await Client.SendMessageAsync(Body(), "key-unkept")).ExpectAsync(HttpStatusCode.Created);
        Assert.That(first.Str("status"), Is.EqualTo("sent"));
        var again = await (await Client.SendMessageAsync(Body(), "key-unkept")).ExpectAsync(HttpStatusCode.Created);

        Assert.That(again.Str("id"), Is.EqualTo(first.Str("id")), "answered from the message's state");
        Assert.That(Agent.OutboxFiles(), Has.Length.EqualTo(1));
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages"), Is.EqualTo(1));
    }

    [Test]
    public async Task Send_ShouldSendOnce_WhenTheSameKeyArrivesConcurrently()
    {
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Client.SendMessageAsync(Body(), "key-race")));
        var ids = new HashSet<string>();
        foreach (var a in answers)
            ids.Add((await a.ExpectAsync(HttpStatusCode.Created)).Str("id"));

        Assert.That(ids, Has.Count.EqualTo(1));
        Assert.That(Agent.OutboxFiles(), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task Send_ShouldReturn409_WhenIdempotencyKeyIsReusedWithAnotherBody()
    {
        await (await Client.SendMessageAsync(Body("one"), "key-2")).ExpectAsync(HttpStatusCode.Created);
        var problem = await (await Client.SendMessageAsync(Body("two"), "key-2")).ExpectAsync(HttpStatusCode.Conflict);

        Assert.That(problem.Str("code"), Is.EqualTo("idempotency_key_reused"));
        Assert.That(Agent.OutboxFiles(), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task IdempotencyKeys_ShouldBeKeptAtLeast24h_AndForgottenAfterTheirLifetime()
    {
        await (await Client.SendMessageAsync(Body("one"), "key-old")).ExpectAsync(HttpStatusCode.Created);

        Agent.Time.Advance(TimeSpan.FromHours(25));
        await (await Client.SendMessageAsync(Body("two"), "key-old")).ExpectAsync(HttpStatusCode.Conflict);

        Agent.Time.Advance(TimeSpan.FromHours(24)); // 49 h: past Scheduling:IdempotencyKeyLifetime (48 h); the hourly sweep runs
        await Eventually.TrueAsync(async () =>
            (await Agent.Services.GetRequiredService<LineAgent.Messages.IdempotencyStore>().FindAsync("key-old", default)) is null, "the key forgotten");
        await (await Client.SendMessageAsync(Body("two"), "key-old")).ExpectAsync(HttpStatusCode.Created);
    }

    [Test]
    public async Task Send_ShouldNotStoreTheKey_WhenTheRequestWasInvalid()
    {
        await (await Client.SendMessageAsync(new { content = "" }, "key-3")).ExpectAsync(HttpStatusCode.BadRequest);
        var m = await (await Client.SendMessageAsync(Body(), "key-3")).ExpectAsync(HttpStatusCode.Created);
        Assert.That(m.Str("status"), Is.EqualTo("sent"));
    }

    [Test]
    public async Task Schedule_ShouldAnswer201Scheduled_AndSendAtItsTime()
    {
        var at = Agent.Time.GetUtcNow().AddSeconds(5);
        var m = await (await Client.SendMessageAsync(Body(at: at.ToString("O")))).ExpectAsync(HttpStatusCode.Created);
        Assert.That(m.Str("status"), Is.EqualTo("scheduled"));

        await Agent.AdvanceToAsync(at);
        var sent = await Eventually.ValueAsync(() => Client.GetJsonAsync($"/api/messages/{m.Str("id")}")!, x => x.Str("status") == "sent", "sent");
        Assert.That(DateTimeOffset.Parse(sent.Str("sentAt")), Is.EqualTo(at));
    }

    [Test]
    public async Task Schedule_ShouldAcceptLocalTimeWithTimeZone()
    {
        var m = await (await Client.SendMessageAsync(new
        {
            content = "hi", recipientPhone = "+12025550123", scheduledAt = "2027-03-15T09:00:00", timeZone = "America/New_York",
        })).ExpectAsync(HttpStatusCode.Created);

        // 15 March 2027 is after the US DST change: 09:00 EDT = 13:00Z.
        Assert.That(m.Str("scheduledAt"), Is.EqualTo("2027-03-15T13:00:00.000Z"));
        Assert.That(m.Str("timeZone"), Is.EqualTo("America/New_York"));
    }

    [Test]
    public async Task Patch_ShouldEditAndReschedule_AScheduledMessage()
    {
        var m = await (await Client.SendMessageAsync(Body(at: InSeconds(60)))).ExpectAsync(HttpStatusCode.Created);
        var later = Agent.Time.GetUtcNow().AddHours(2);

        var patched = await (await Client.PatchAsJsonAsync($"/api/messages/{m.Str("id")}", new { content = "Edited", scheduledAt = later.ToString("O") }))
            .ExpectAsync(HttpStatusCode.OK);

        Assert.That(patched.Str("content"), Is.EqualTo("Edited"));
        Assert.That(DateTimeOffset.Parse(patched.Str("scheduledAt")), Is.EqualTo(later));
        await Agent.AdvanceToAsync(Agent.Time.GetUtcNow().AddSeconds(90));
        Assert.That((await Client.GetJsonAsync($"/api/messages/{m.Str("id")}")).Str("status"), Is.EqualTo("scheduled"));
        Assert.That(Agent.OutboxFiles(), Is.Empty);
    }

    [Test]
    public async Task Patch_ShouldReturn409NotScheduled_WhenAlreadySent_And404_WhenUnknown_And400_WhenInvalid()
    {
        var sent = await (await Client.SendMessageAsync(Body())).ExpectAsync(HttpStatusCode.Created);
        var conflict = await (await Client.PatchAsJsonAsync($"/api/messages/{sent.Str("id")}", new { content = "x" })).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(conflict.Str("code"), Is.EqualTo("not_scheduled"));

        var missing = await (await Client.PatchAsJsonAsync("/api/messages/msg_nope", new { content = "x" })).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(missing.Str("code"), Is.EqualTo("message_not_found"));

        var invalid = await (await Client.PatchAsJsonAsync($"/api/messages/{sent.Str("id")}", new { content = "", scheduledAt = "later" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(invalid.ProblemFields(), Is.EquivalentTo(new[] { "content", "scheduledAt" }), "an empty content is not an edit");
        var empty = await (await Client.PatchAsJsonAsync($"/api/messages/{sent.Str("id")}", new { })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(empty.Str("code"), Is.EqualTo("missing_change"));
    }

    [Test]
    public async Task Cancel_ShouldCancelAScheduledMessage_SoItIsNeverSent()
    {
        var at = Agent.Time.GetUtcNow().AddSeconds(30);
        var m = await (await Client.SendMessageAsync(Body(at: at.ToString("O")))).ExpectAsync(HttpStatusCode.Created);

        var cancelled = await (await Client.PostAsync($"/api/messages/{m.Str("id")}/cancel", null)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(cancelled.Str("status"), Is.EqualTo("cancelled"));

        await Agent.AdvanceToAsync(at.AddSeconds(5));
        Assert.That(Agent.OutboxFiles(), Is.Empty);
        Assert.That((await Client.GetJsonAsync($"/api/messages/{m.Str("id")}")).Str("status"), Is.EqualTo("cancelled"));
    }

    [Test]
    public async Task Cancel_ShouldReturn409_WhenMessageAlreadySent_And404_WhenUnknown()
    {
        var sent = await (await Client.SendMessageAsync(Body())).ExpectAsync(HttpStatusCode.Created);
        var conflict = await (await Client.PostAsync($"/api/messages/{sent.Str("id")}/cancel", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(conflict.Str("code"), Is.EqualTo("not_cancellable"));
        Assert.That(conflict.Str("messageStatus"), Is.EqualTo("sent"));

        var missing = await (await Client.PostAsync("/api/messages/msg_nope/cancel", null)).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(missing.Str("code"), Is.EqualTo("message_not_found"));
        Assert.That((await Client.GetAsync("/api/messages/msg_nope")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That((await Client.GetAsync("/api/messages/msg_nope/events")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task Retry_ShouldCreateALinkedMessage_ForAFailedOne_And409_OtherwiseAnd404_WhenUnknown()
    {
        var failedId = await InsertFailedAsync();

        var retried = await (await Client.PostAsync($"/api/messages/{failedId}/retry", null)).ExpectAsync(HttpStatusCode.Created);
        Assert.That(retried.Str("retryOf"), Is.EqualTo(failedId));
        Assert.That(retried.Str("status"), Is.EqualTo("sent"));
        Assert.That(retried.Str("id"), Is.Not.EqualTo(failedId));

        var conflict = await (await Client.PostAsync($"/api/messages/{retried.Str("id")}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(conflict.Str("code"), Is.EqualTo("not_failed"));
        var missing = await (await Client.PostAsync("/api/messages/msg_nope/retry", null)).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(missing.Str("code"), Is.EqualTo("message_not_found"));

        // Retried once: a second retry of the same failed message would send it twice.
        var again = await (await Client.PostAsync($"/api/messages/{failedId}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(again.Str("code"), Is.EqualTo("already_retried"));
        Assert.That(again.Str("retryId"), Is.EqualTo(retried.Str("id")));
        Assert.That(again.Str("detail"), Does.Contain(retried.Str("id")));
    }

    /// <summary>A double click, or a client's retry loop without an Idempotency-Key: one retry is stored and sent.</summary>
    [Test]
    public async Task RetriesAtOnce_ShouldMakeOneMessage()
    {
        var failedId = await InsertFailedAsync();
        var answers = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Client.PostAsync($"/api/messages/{failedId}/retry", null)));

        Assert.That(answers.Count(a => a.StatusCode == HttpStatusCode.Created), Is.EqualTo(1));
        Assert.That(answers.Count(a => a.StatusCode == HttpStatusCode.Conflict), Is.EqualTo(5));
        var all = (await Client.GetJsonAsync("/api/messages?limit=500"))["items"]!.AsArray();
        Assert.That(all.Count(m => m!["retryOf"]?.GetValue<string>() == failedId), Is.EqualTo(1));

        // With one Idempotency-Key, every answer is the first one (a replay), not already_retried.
        var keyed = await InsertFailedAsync();
        var replays = await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/messages/{keyed}/retry") { Headers = { { "Idempotency-Key", "retry-1" } } };
            var response = await Client.SendAsync(request);
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));
        Assert.That(replays.Select(r => r.StatusCode), Is.All.EqualTo(HttpStatusCode.Created), string.Join("\n", replays.Select(r => r.Body)));
        Assert.That(replays.Select(r => System.Text.Json.Nodes.JsonNode.Parse(r.Body).Str("id")).Distinct().Count(), Is.EqualTo(1));
    }

    /// <summary>A cancelled retry sent nothing: the failed message may be retried again.</summary>
    [Test]
    public async Task AMessageWhoseRetryWasCancelled_ShouldBeRetriableAgain()
    {
        var failedId = await InsertFailedAsync();
        var now = Time.ToMs(Agent.Time.GetUtcNow());
        var cancelled = new LineAgent.Messages.MessageRow
        {
            Id = Ids.New("msg", Agent.Time.GetUtcNow()), Content = "failed earlier", Type = "imessage", RequestedType = "auto",
            Status = "cancelled", LineId = "default", RecipientPhone = "+12025550123", DueAt = now, CreatedAt = now, UpdatedAt = now, RetryOf = failedId,
        };
        await Agent.Services.GetRequiredService<LineAgent.Messages.MessageLifecycle>().AcceptAsync([cancelled]);

        var retried = await (await Client.PostAsync($"/api/messages/{failedId}/retry", null)).ExpectAsync(HttpStatusCode.Created);
        Assert.That(retried.Str("retryOf"), Is.EqualTo(failedId));
    }

    [Test]
    public async Task Status_ShouldCountTodaysFailuresAndSends_OnlyToday()
    {
        await (await Client.PostAsJsonAsync("/api/suppressions", new { address = "+12025550123", reason = "asked" })).ExpectAsync(HttpStatusCode.Created);
        await Client.SendMessageAsync(Body()); // stored as failed (suppressed), answered as a failure
        await (await Client.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550124" })).ExpectAsync(HttpStatusCode.Created);

        var today = (await Client.GetJsonAsync("/api/status"))["counts"]!;
        Assert.That(today["failedToday"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(today["sentToday"]!.GetValue<long>(), Is.EqualTo(1));

        Agent.Time.Advance(TimeSpan.FromDays(1));
        var tomorrow = (await Client.GetJsonAsync("/api/status"))["counts"]!;
        Assert.That(tomorrow["failedToday"]!.GetValue<long>(), Is.Zero);
        Assert.That(tomorrow["sentToday"]!.GetValue<long>(), Is.Zero);
    }

    /// <summary>
    /// On the day clocks go back (New York, 1 November 2026), today began at 00:00 EDT (04:00Z). It was taken at now's
    /// offset (EST, 05:00Z), so a message sent at 00:30 was not counted as sent today; the line's own usage counted it.
    /// </summary>
    [Test]
    public async Task Status_OnADstChangeDay_ShouldCountFromThatDaysMidnight()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 1, 4, 30, 0, TimeSpan.Zero));
        time.SetLocalTimeZone(TimeZoneInfo.FindSystemTimeZoneById("America/New_York"));
        using var agent = new AgentFactory(time: time);
        using var api = agent.Api();
        await (await api.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550124" })).ExpectAsync(HttpStatusCode.Created);

        time.SetUtcNow(new DateTimeOffset(2026, 11, 1, 17, 0, 0, TimeSpan.Zero)); // noon EST
        var status = await api.GetJsonAsync("/api/status");
        Assert.That(status["counts"]!["sentToday"]!.GetValue<long>(), Is.EqualTo(1));
        time.SetUtcNow(new DateTimeOffset(2026, 11, 2, 5, 0, 0, TimeSpan.Zero)); // the next midnight, EST
        Assert.That((await api.GetJsonAsync("/api/status"))["counts"]!["sentToday"]!.GetValue<long>(), Is.Zero);
    }

    /// <summary>A message held for its recipient's hours is next at the hold's end, not at its due time already past.</summary>
    [Test]
    public async Task Status_NextScheduledAt_ShouldBeTheEndOfAHold()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 10, 20, 0, 0, TimeSpan.Zero)); // 15:00 New York
        using var agent = new AgentFactory(time: time);
        using var api = agent.Api();
        var held = await (await api.SendMessageAsync(new { content = "w", recipientPhone = "+12125550123", recipientWindow = new { from = "09:00", to = "10:00" } }))
            .ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(DateTimeOffset.Parse(held.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 11, 14, 0, 0, TimeSpan.Zero)), "09:00 tomorrow in New York");

        var status = await api.GetJsonAsync("/api/status");
        Assert.That(DateTimeOffset.Parse(status.Str("nextScheduledAt")), Is.EqualTo(DateTimeOffset.Parse(held.Str("notBefore"))));
        await (await api.SendMessageAsync(new { content = "sooner", recipientPhone = "+12025550124", scheduledAt = "2026-12-10T21:00:00Z" })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(DateTimeOffset.Parse((await api.GetJsonAsync("/api/status")).Str("nextScheduledAt")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 21, 0, 0, TimeSpan.Zero)));
    }

    /// <summary>
    /// A paused line's messages wait for its resume: they are not the next send (probe J: `lineagent status` showed a paused
    /// line's due time, already past, as "next send").
    /// </summary>
    [Test]
    public async Task Status_NextScheduledAt_ShouldLeaveOutAPausedLine()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 10, 20, 0, 0, TimeSpan.Zero));
        using var agent = new AgentFactory(time: time);
        using var api = agent.Api();
        await (await api.SendMessageAsync(new { content = "soon", recipientPhone = "+12025550124", scheduledAt = "2026-12-10T20:05:00Z" }))
            .ExpectAsync(HttpStatusCode.Created);
        await (await api.PatchAsJsonAsync("/api/lines/default", new { active = false })).ExpectAsync(HttpStatusCode.OK);
        time.SetUtcNow(new DateTimeOffset(2026, 12, 10, 20, 10, 0, TimeSpan.Zero)); // due, and waiting for the resume

        Assert.That((await api.GetJsonAsync("/api/status"))["nextScheduledAt"], Is.Null, "nothing goes while the line is paused");
        await (await api.PatchAsJsonAsync("/api/lines/default", new { active = true })).ExpectAsync(HttpStatusCode.OK);
        var next = (await api.GetJsonAsync("/api/status")).StrOrNull("nextScheduledAt");
        Assert.That(next is null || DateTimeOffset.Parse(next) == new DateTimeOffset(2026, 12, 10, 20, 5, 0, TimeSpan.Zero), Is.True, next);
    }

    /// <summary>
    /// A message due while its line is paused stays `scheduled` and editable (probe J: an edit of its content turned it
    /// `queued`, as if it had been held, and a second edit was then refused with 409 not_scheduled).
    /// </summary>
    [Test]
    public async Task Patch_OfContent_OnAPausedLine_ShouldKeepTheMessageScheduledAndEditable()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 10, 20, 0, 0, TimeSpan.Zero));
        using var agent = new AgentFactory(time: time);
        using var api = agent.Api();
        var m = await (await api.SendMessageAsync(new { content = "soon", recipientPhone = "+12025550124", scheduledAt = "2026-12-10T20:05:00Z" }))
            .ExpectAsync(HttpStatusCode.Created);
        await (await api.PatchAsJsonAsync("/api/lines/default", new { active = false })).ExpectAsync(HttpStatusCode.OK);
        time.SetUtcNow(new DateTimeOffset(2026, 12, 10, 20, 10, 0, TimeSpan.Zero)); // due, and waiting for the resume

        var first = await (await api.PatchAsJsonAsync($"/api/messages/{m.Str("id")}", new { content = "edited once" })).ExpectAsync(HttpStatusCode.OK);
        Assert.That(first.Str("status"), Is.EqualTo("scheduled"));
        var second = await (await api.PatchAsJsonAsync($"/api/messages/{m.Str("id")}", new { content = "edited twice" })).ExpectAsync(HttpStatusCode.OK);
        Assert.That((second.Str("status"), second.Str("content")), Is.EqualTo(("scheduled", "edited twice")));
        Assert.That(DateTimeOffset.Parse(second.Str("scheduledAt")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 20, 5, 0, TimeSpan.Zero)));
    }

    [Test]
    public async Task Status_ShouldSayDryRun_AndCount()
    {
        await (await Client.SendMessageAsync(Body())).ExpectAsync(HttpStatusCode.Created);
        await (await Client.SendMessageAsync(Body(at: InSeconds(600)))).ExpectAsync(HttpStatusCode.Created);

        var status = await Client.GetJsonAsync("/api/status");

        Assert.That(status["dryRun"]!.GetValue<bool>(), Is.True);
        Assert.That(status["counts"]!["sentToday"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(status["counts"]!["scheduled"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(DateTimeOffset.Parse(status.Str("nextScheduledAt")), Is.EqualTo(Agent.Time.GetUtcNow().AddSeconds(600)));
        Assert.That(status["lines"]!.AsArray().Single()!.Str("id"), Is.EqualTo("default"));
    }

    [Test]
    public async Task ExportCsv_ShouldKeepFormulasAsText()
    {
        await (await Client.SendMessageAsync(new { content = "=HYPERLINK(\"http://evil\")", recipientPhone = "+12025550109" })).ExpectAsync(HttpStatusCode.Created);
        var csv = await Client.GetStringAsync("/api/messages/export");
        Assert.That(csv, Does.Contain("'=HYPERLINK"));
        Assert.That(csv.Split('\n').Skip(1).Any(l => l.Contains(",=HYPERLINK")), Is.False);
    }

    [Test]
    public async Task Patch_ShouldRefuseEmptyContent()
    {
        var m = await (await Client.SendMessageAsync(Body(at: InSeconds(600)))).ExpectAsync(HttpStatusCode.Created);
        var problem = await (await Client.PatchAsJsonAsync($"/api/messages/{m.Str("id")}", new { content = "" })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Is.EqualTo(new[] { "missing_content" }));
        Assert.That((await Client.GetJsonAsync($"/api/messages/{m.Str("id")}")).Str("content"), Is.EqualTo("Hi Ana"));
    }

    [Test]
    public async Task Restart_ShouldFailPendingMessagesOfALineThatIsGone()
    {
        using var dir = new TempDir();
        string id;
        using (var first = new AgentFactory(dir, settings: new Dictionary<string, string?> { ["Lines:0:Id"] = "old-mac" }))
        using (var api = first.Api())
            id = (await (await api.SendMessageAsync(Body(at: first.Time.GetUtcNow().AddHours(1).ToString("O")))).ExpectAsync(HttpStatusCode.Created)).Str("id");

        using var second = new AgentFactory(dir, settings: new Dictionary<string, string?> { ["Lines:0:Id"] = "new-mac" });
        using var api2 = second.Api();
        var m = await api2.GetJsonAsync($"/api/messages/{id}");
        Assert.That((m.Str("status"), m["error"]?["code"]?.GetValue<string>()), Is.EqualTo(("failed", "line_not_found")), m.ToJsonString());
    }

    [Test]
    public void AWindowThatDoesNotParse_ShouldStopTheAgentFromStarting()
    {
        var config = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Lines:0:Id"] = "mac", ["Lines:0:Pacing:Window:From"] = "09:00", ["Lines:0:Pacing:Window:To"] = "24:00",
        }).Build();
        var services = new ServiceCollection().AddSingleton<Microsoft.Extensions.Configuration.IConfiguration>(config);
        LineAgent.Hosting.AgentHost.AddLineAgent(services, config);
        using var provider = services.BuildServiceProvider();
        var e = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            _ = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<LineAgent.Lines.LinesOptions>>().Value);
        Assert.That(e!.Message, Does.Contain("pacing is invalid"));
        var line = new LineAgent.Lines.LineOptions { Id = "mac" };
        line.Pacing.Window.To = "24:00";
        Assert.That(LineAgent.Hosting.AgentHost.PacingProblems(line), Is.EqualTo(new[] { "Lines:mac:Pacing:Window:To '24:00' is not HH:mm" }));
    }

    [Test]
    public async Task OpenApiDocument_ShouldDescribeTheRoutes()
    {
        using var anonymous = Agent.CreateClient();
        var doc = await anonymous.GetStringAsync("/openapi/v1.json");
        Assert.That(doc, Does.Contain("/api/messages/{id}/cancel").And.Contain("/api/status").And.Contain("/api/lines"));
    }

    private async Task<long> CountAsync(string sql)
    {
        await using var c = await Agent.Services.GetRequiredService<Db>().OpenAsync();
        return await c.ExecuteScalarAsync<long>(sql);
    }

    private async Task<string> InsertFailedAsync()
    {
        var now = Time.ToMs(Agent.Time.GetUtcNow());
        var row = new LineAgent.Messages.MessageRow
        {
            Id = Ids.New("msg", Agent.Time.GetUtcNow()), Content = "failed earlier", Type = "imessage", RequestedType = "auto",
            Status = "failed", LineId = "default", RecipientPhone = "+12025550123", DueAt = now, CreatedAt = now, UpdatedAt = now,
            ErrorCode = "channel_unavailable", ErrorMessage = "test",
        };
        await Agent.Services.GetRequiredService<LineAgent.Messages.MessageLifecycle>().AcceptAsync([row]);
        return row.Id;
    }
}
