using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Messages;
using LineAgent.Tests.Support;
using LineAgent.Tests.Webhooks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Sequences;

/// <summary>Follow-ups on the dry-run outbox with FakeTimeProvider: exact times, stops, the sequence API.</summary>
public sealed class FollowUpTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);

    private static AgentFactory Agent(IDictionary<string, string?>? extra = null, DateTimeOffset? start = null)
    {
        var settings = new Dictionary<string, string?> { ["Lines:0:Id"] = "default" };
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
            settings[k] = v;
        return new AgentFactory(time: new FakeTimeProvider(start ?? T0), settings: settings);
    }

    private static async Task<string> Lead(HttpClient api, object lead) =>
        (await (await api.PostAsJsonAsync("/api/leads", lead)).ExpectAsync(HttpStatusCode.Created)).Str("id");

    private static async Task<List<JsonObject>> Steps(HttpClient api, string sequenceId) =>
        (await api.GetJsonAsync($"/api/sequences/{sequenceId}"))["steps"]!.AsArray().Select(s => s!.AsObject()).ToList();

    private static DateTimeOffset At(JsonNode? node, string name) => DateTimeOffset.Parse(node.Str(name));

    /// <summary>
    /// Probe K: an edit of a bulk's follow-up with placeholders went out with `{{firstName}}` as typed. A message to a lead takes
    /// its texts as templates filled from that lead, as the bulk did; a wrong one is a 400 and changes nothing.
    /// </summary>
    [Test]
    public async Task EditOfABulksFollowUp_ShouldFillItsPlaceholdersFromTheLead()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var ana = await Lead(api, new { firstName = "Ana", phone = "+12025550111" });
        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = new[] { ana }, content = "Hi {{firstName}}", followUps = new[] { new { after = "PT1H", content = "F1 {{firstName}}" } },
        })).ExpectAsync(HttpStatusCode.Accepted);
        var first = await api.GetJsonAsync($"/api/messages/{bulk["messages"]![0].Str("messageId")}");
        var step = (await Steps(api, first.Str("sequenceId")))[1];

        var edited = await (await api.PatchAsJsonAsync($"/api/messages/{step.Str("id")}", new { content = "Hey {{firstName}}, {{company|your team}}" }))
            .ExpectAsync(HttpStatusCode.OK);
        Assert.That(edited.Str("content"), Is.EqualTo("Hey Ana, your team"));
        var missing = await (await api.PatchAsJsonAsync($"/api/messages/{step.Str("id")}", new { content = "At {{company}}" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(missing.ProblemCodes(), Is.EqualTo(new[] { "missing_field" }));
        var wrong = await (await api.PatchAsJsonAsync($"/api/messages/{step.Str("id")}", new { content = "Hi {firstName}" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(wrong.ProblemCodes(), Is.EqualTo(new[] { "invalid_template" }));
        // With the edit's other problems, in one 400 (probe L: only scheduledAt, or only the unknown field, was named).
        var both = await (await api.PatchAsJsonAsync($"/api/messages/{step.Str("id")}", new { content = "Hello {{nope}}", scheduledAt = "bad" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(both.ProblemFields(), Is.EquivalentTo(new[] { "content", "scheduledAt" }));
        var unknown = await (await api.PatchAsJsonAsync($"/api/messages/{step.Str("id")}", new { content = "Hello {{lastName}}", extra = 1 }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(unknown.ProblemFields(), Is.EquivalentTo(new[] { "content", "extra" }));
        Assert.That((await api.GetJsonAsync($"/api/messages/{step.Str("id")}")).Str("content"), Is.EqualTo("Hey Ana, your team"));

        await agent.AdvanceToAsync(T0.AddHours(2));
        await Eventually.TrueAsync(() => agent.OutboxFileCount(step.Str("id")) == 1, "the follow-up sent");
        var file = JsonNode.Parse(File.ReadAllText(Directory.GetFiles(agent.OutboxDir, step.Str("id") + ".*.json").Single()))!;
        Assert.That(file.Str("content"), Is.EqualTo("Hey Ana, your team"));
    }

    /// <summary>A send with leadId fills its texts from the lead too (content, follow-ups); without a lead they are sent as written.</summary>
    [Test]
    public async Task ASendToALead_ShouldFillItsPlaceholders()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var ana = await Lead(api, new { firstName = "Ana", phone = "+12025550112", fields = new { plan = "Pro" } });
        var sent = await (await api.SendMessageAsync(new
        {
            content = "Hi {{firstName}}, your {{fields.plan}} plan", leadId = ana,
            followUps = new[] { new { after = "PT1H", content = "Still {{fields.plan}}?" } },
        })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(sent.Str("content"), Is.EqualTo("Hi Ana, your Pro plan"));
        Assert.That((await Steps(api, sent.Str("sequenceId")))[1].Str("content"), Is.EqualTo("Still Pro?"));

        var problem = await (await api.SendMessageAsync(new
        {
            content = "Hi {{lastName}}", leadId = ana, followUps = new[] { new { after = "PT1H", content = "{{nope}}" } },
        })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(new[] { "content", "followUps[0].content" }));
        // What the lead's values make of the texts is checked as the texts are (probe L: stored, where /bulk refused them).
        var big = await Lead(api, new { firstName = "Big", phone = "+12025550114", email = "big@example.com",
            fields = new { big = new string('x', 2000), lines = "a\r\nBcc: someone@example.org" } });
        var tooLong = await (await api.SendMessageAsync(new
        {
            content = "x", leadId = big, type = "email", subject = "{{fields.lines}}",
            followUps = new[] { new { after = "PT1H", content = string.Concat(Enumerable.Repeat("{{fields.big}}", 6)) } },
        })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(tooLong.ProblemFields(), Is.EquivalentTo(new[] { "subject", "followUps[0].content" }));
        // A subject only where the send may be an email: a phone-only lead's SMS drops it, and it is not filled in (review).
        var sms = await (await api.SendMessageAsync(new { content = "Hi", leadId = ana, type = "sms", subject = "{{company}}" })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(sms.StrOrNull("subject"), Is.Null);
        // The stored text is the lead's already: saved again as it is (the console's edit starts from it), a lead's own value
        // with braces is not read as a placeholder (review).
        var braces = await Lead(api, new { firstName = "{{odd", phone = "+12025550115" });
        var odd = await (await api.SendMessageAsync(new { content = "Hi {{firstName}}", leadId = braces, scheduledAt = T0.AddHours(1).ToString("O") }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(odd.Str("content"), Is.EqualTo("Hi {{odd"));
        await (await api.PatchAsJsonAsync($"/api/messages/{odd.Str("id")}", new { content = "Hi {{odd" })).ExpectAsync(HttpStatusCode.OK);
        var literal = await (await api.SendMessageAsync(new { content = "Hi {{firstName}}", recipientPhone = "+12025550113" })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(literal.Str("content"), Is.EqualTo("Hi {{firstName}}"), "no lead: nothing to fill in");
    }

    [Test]
    public async Task FollowUp_ShouldBeDueAfterThePreviousStepsActualSentAt_NotAfterItsSchedule()
    {
        using var agent = Agent(new Dictionary<string, string?>
        {
            // Pacing on: the first message waits for the window, so its sentAt differs from its scheduledAt.
            ["Agent:DryRunPacing"] = "true",
            ["Lines:0:Pacing:Window:From"] = "16:00", ["Lines:0:Pacing:Window:To"] = "22:00", ["Lines:0:Pacing:Window:TimeZone"] = "UTC",
            ["Lines:0:Pacing:MinGap"] = "00:00:00", ["Lines:0:Pacing:Jitter"] = "00:00:00",
        });
        using var api = agent.Api();
        var ana = await Lead(api, new { firstName = "Ana", phone = "+12025550101" });

        var first = await (await api.SendMessageAsync(new
        {
            content = "Hi Ana", leadId = ana, scheduledAt = T0.AddMinutes(10).ToString("O"),
            followUps = new[] { new { after = "P2D", content = "Any thoughts, Ana?" }, new { after = "PT36H", content = "Last note" } },
        })).ExpectAsync(HttpStatusCode.Created);
        var sequenceId = first.Str("sequenceId");
        var steps = await Steps(api, sequenceId);
        Assert.That(steps.Select(s => s["sequenceStep"]!.GetValue<int>()), Is.EqualTo(new[] { 0, 1, 2 }));
        Assert.That(steps.Select(s => s.Str("status")), Is.All.EqualTo("scheduled"));
        Assert.That(steps[1]["waitingForPreviousStep"]!.GetValue<bool>(), Is.True);
        Assert.That(steps[1].StrOrNull("scheduledAt"), Is.Null, "no due time until step 0 is sent");
        Assert.That(steps[1].Str("followUpAfter"), Is.EqualTo("P2D"));
        Assert.That(steps[2].Str("followUpAfter"), Is.EqualTo("P1DT12H"));
        Assert.That(steps[1]["stopOnReply"]!.GetValue<bool>(), Is.True, "follow-ups stop on a reply");
        Assert.That(steps[0]["stopOnReply"]!.GetValue<bool>(), Is.False, "the first message only when asked");

        // Scheduled 15:10, held by the window until 16:00: sent at 16:00.
        await agent.AdvanceToAsync(T0.AddHours(1));
        var sent0 = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{steps[0].Str("id")}")!, m => m.Str("status") == "sent", "step 0 sent");
        var sentAt0 = At(sent0, "sentAt");
        Assert.That(sentAt0, Is.EqualTo(T0.AddHours(1)));

        var step1 = await api.GetJsonAsync($"/api/messages/{steps[1].Str("id")}");
        Assert.That(At(step1, "scheduledAt"), Is.EqualTo(sentAt0 + TimeSpan.FromDays(2)), "due P2D after the actual sentAt (16:00), not the schedule (15:10)");
        Assert.That(step1["waitingForPreviousStep"]!.GetValue<bool>(), Is.False);
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{steps[1].Str("id")}/events"))!;
        Assert.That(events.Last().Str("code"), Is.EqualTo("follow_up"));
        Assert.That(events.Last().Str("detail"), Does.Contain(steps[0].Str("id")));
        Assert.That((await api.GetJsonAsync($"/api/messages/{steps[2].Str("id")}"))["waitingForPreviousStep"]!.GetValue<bool>(), Is.True);

        // Not a millisecond early.
        var due1 = sentAt0 + TimeSpan.FromDays(2);
        await agent.AdvanceToAsync(due1 - TimeSpan.FromMilliseconds(1));
        Assert.That(agent.OutboxFileCount(steps[1].Str("id")), Is.Zero);
        await agent.AdvanceToAsync(due1);
        var sent1 = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{steps[1].Str("id")}")!, m => m.Str("status") == "sent", "step 1 sent");
        Assert.That(At(sent1, "sentAt"), Is.EqualTo(due1));
        var step2 = await api.GetJsonAsync($"/api/messages/{steps[2].Str("id")}");
        Assert.That(At(step2, "scheduledAt"), Is.EqualTo(due1 + TimeSpan.FromHours(36)));

        // Due 04:00, outside the line's window: it waits for 16:00 like any message.
        var due2 = due1 + TimeSpan.FromHours(36);
        await agent.AdvanceToAsync(due2.Date.AddHours(16));
        var sent2 = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{steps[2].Str("id")}")!, m => m.Str("status") == "sent", "step 2 sent");
        Assert.That(At(sent2, "sentAt"), Is.EqualTo(new DateTimeOffset(due2.Date.AddHours(16), TimeSpan.Zero)));
        var sequence = await api.GetJsonAsync($"/api/sequences/{sequenceId}");
        Assert.That(sequence.Str("status"), Is.EqualTo("completed"));
        Assert.That(sequence.Str("leadId"), Is.EqualTo(ana));
    }

    [Test]
    public async Task CancelledStep_ShouldStopTheRest_WithSequenceStopped_AndAMessageCancelledWebhookEach()
    {
        using var agent = Agent();
        using var api = agent.Api();
        await using var hooks = await WebhookReceiver.StartAsync();
        var hook = await (await api.PostAsJsonAsync("/api/webhooks", new { url = hooks.Url, events = new[] { "message.cancelled" } })).ExpectAsync(HttpStatusCode.Created);
        hooks.Secret = hook.Str("secret");

        var first = await (await api.SendMessageAsync(new
        {
            content = "Hello", recipientPhone = "+12025550101", scheduledAt = T0.AddHours(1).ToString("O"),
            followUps = new[] { new { after = "P1D", content = "Again" }, new { after = "P1D", content = "Once more" } },
        })).ExpectAsync(HttpStatusCode.Created);

        await (await api.PostAsync($"/api/messages/{first.Str("id")}/cancel", null)).ExpectAsync(HttpStatusCode.OK);

        var steps = await Steps(api, first.Str("sequenceId"));
        Assert.That(steps.Select(s => s.Str("status")), Is.All.EqualTo("cancelled"));
        Assert.That(steps.Skip(1).Select(s => s["error"].Str("code")), Is.All.EqualTo("sequence_stopped"));
        Assert.That(steps[1]["error"].Str("message"), Does.Contain(first.Str("id")));
        var sequence = await api.GetJsonAsync($"/api/sequences/{first.Str("sequenceId")}");
        Assert.That(sequence.Str("status"), Is.EqualTo("stopped"));
        await Eventually.TrueAsync(() => hooks.Accepted.Count >= 3, "three message.cancelled webhooks");
        Assert.That(hooks.Accepted.Select(h => h.Type), Is.All.EqualTo("message.cancelled"));
        Assert.That(hooks.Accepted.Select(h => h.SignatureValid), Is.All.True);
        Assert.That(hooks.Accepted.Select(h => h.MessageId), Is.EquivalentTo(steps.Select(s => s.Str("id"))));
    }

    [Test]
    public async Task FailedStep_ShouldStopTheRest()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var first = await (await api.SendMessageAsync(new
        {
            content = "Hello", recipientPhone = "+12025550101", scheduledAt = T0.AddHours(1).ToString("O"),
            followUps = new[] { new { after = "P1D", content = "Again" } },
        })).ExpectAsync(HttpStatusCode.Created);
        // The recipient opts out before it goes: the dispatcher fails it as suppressed.
        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550101", reason = "asked" })).ExpectAsync(HttpStatusCode.Created);

        await agent.AdvanceToAsync(T0.AddHours(1));
        var steps = await Eventually.ValueAsync(() => Steps(api, first.Str("sequenceId"))!, s => s[1].Str("status") == "cancelled", "step 1 stopped");
        Assert.That(steps[0].Str("status"), Is.EqualTo("failed"));
        Assert.That(steps[1]["error"].Str("code"), Is.EqualTo("sequence_stopped"));
        Assert.That(steps[1]["error"].Str("message"), Does.Contain("failed (suppressed)"));
    }

    [Test]
    public async Task CancelSequence_ShouldCancelEveryPendingStep_AndSayHowMany()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var first = await (await api.SendMessageAsync(new
        {
            content = "Hello", recipientPhone = "+12025550101",
            followUps = new[] { new { after = "P1D", content = "Again" }, new { after = "P3D", content = "Last" } },
        })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(first.Str("status"), Is.EqualTo("sent"));

        var result = await (await api.PostAsync($"/api/sequences/{first.Str("sequenceId")}/cancel", null)).ExpectAsync(HttpStatusCode.OK);

        Assert.That(result["cancelled"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That(result["sequence"].Str("status"), Is.EqualTo("stopped"));
        Assert.That(result["sequence"]!["steps"]!.AsArray().Select(s => s.Str("status")), Is.EqualTo(new[] { "sent", "cancelled", "cancelled" }));
        await (await api.GetAsync("/api/sequences/seq_nope")).ExpectAsync(HttpStatusCode.NotFound);
    }

    [Test]
    public async Task AWaitingStepsTime_ShouldBeRefusedWithItsOwnReason_ItsContentEditable()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var first = await (await api.SendMessageAsync(new
        {
            content = "Hello", recipientPhone = "+12025550101", scheduledAt = "2030-01-01T09:00:00Z",
            followUps = new[] { new { after = "P2D", content = "Again" } },
        })).ExpectAsync(HttpStatusCode.Created);
        var sequence = await api.GetJsonAsync($"/api/sequences/{first.Str("sequenceId")}");
        var waiting = sequence["steps"]!.AsArray()[1].Str("id");

        var moved = await (await api.PatchAsJsonAsync($"/api/messages/{waiting}", new { scheduledAt = "2030-02-01T09:00:00Z" })).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(moved.Str("code"), Is.EqualTo("waiting_for_previous_step"));
        Assert.That(moved.Str("detail"), Does.Contain("due P2D after step 0 is sent").And.Not.Contain("only a scheduled message"));
        var edited = await (await api.PatchAsJsonAsync($"/api/messages/{waiting}", new { content = "Again, edited" })).ExpectAsync(HttpStatusCode.OK);
        Assert.That(edited.Str("content"), Is.EqualTo("Again, edited"));
    }

    [TestCase("P1M", "invalid_duration")]
    [TestCase("2 days", "invalid_duration")]
    [TestCase("PT0S", "invalid_duration")]
    public async Task FollowUp_ShouldRefuseADurationItCannotRead(string after, string code)
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(new { content = "Hi", recipientPhone = "+12025550101", followUps = new[] { new { after, content = "x" } } }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Does.Contain(code));
        Assert.That(problem.ProblemFields(), Does.Contain("followUps[0].after"));
    }

    [Test]
    public async Task FollowUps_ShouldBeAtMostFive()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var six = Enumerable.Range(0, 6).Select(i => new { after = "P1D", content = $"f{i}" }).ToArray();
        var problem = await (await api.SendMessageAsync(new { content = "Hi", recipientPhone = "+12025550101", followUps = six }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Does.Contain("too_many_follow_ups"));
    }

    [Test]
    public async Task WaitingFollowUp_ShouldNotBeClaimed_AfterARestart()
    {
        var dir = new TempDir();
        var time = new FakeTimeProvider(T0);
        string waiting;
        using (var agent = new AgentFactory(dir, time, new Dictionary<string, string?> { ["Lines:0:Id"] = "default" }))
        using (var api = agent.Api())
        {
            var first = await (await api.SendMessageAsync(new
            {
                content = "Hello", recipientPhone = "+12025550101", scheduledAt = T0.AddDays(30).ToString("O"),
                followUps = new[] { new { after = "PT1M", content = "Again" } },
            })).ExpectAsync(HttpStatusCode.Created);
            waiting = (await Steps(api, first.Str("sequenceId")))[1].Str("id");
        }
        time.Advance(TimeSpan.FromDays(10));
        using (var agent = new AgentFactory(dir, time, new Dictionary<string, string?> { ["Lines:0:Id"] = "default" }))
        using (var api = agent.Api())
        {
            await agent.AdvanceToAsync(T0.AddDays(20));
            var step = await api.GetJsonAsync($"/api/messages/{waiting}");
            Assert.That(step.Str("status"), Is.EqualTo("scheduled"));
            Assert.That(step["waitingForPreviousStep"]!.GetValue<bool>(), Is.True);
            Assert.That(agent.OutboxFileCount(waiting), Is.Zero);
            var status = await api.GetJsonAsync("/api/status");
            Assert.That(At(status, "nextScheduledAt"), Is.EqualTo(T0.AddDays(30)), "a waiting follow-up has no time to show");
        }
        dir.Dispose();
    }
}
