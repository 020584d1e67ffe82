using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Time.Testing;
using LineAgent.Scheduling;
using Microsoft.Extensions.DependencyInjection;

namespace LineAgent.Tests.Scheduling;

/// <summary>Per-line pacing with FakeTimeProvider, through the API, on the dry-run outbox with Agent:DryRunPacing.</summary>
public sealed class PacingTests
{
    private static AgentFactory Agent(DateTimeOffset start, Dictionary<string, string?> pacing, TempDir? dir = null,
        Dictionary<string, string?>? agentSettings = null, PacingJitter? jitter = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Agent:DryRunPacing"] = "true",
            ["Lines:0:Id"] = "default",
            ["Lines:0:Pacing:MinGap"] = "00:00:00",
            ["Lines:0:Pacing:Jitter"] = "00:00:00",
            ["Lines:0:Pacing:MaxPerHour"] = "1000",
            ["Lines:0:Pacing:MaxPerDay"] = "1000",
            ["Lines:0:Pacing:MaxNewConversationsPerDay"] = "1000",
            ["Lines:0:Pacing:Window:TimeZone"] = "UTC",
            ["Lines:0:Pacing:Window:From"] = "",
            ["Lines:0:Pacing:Window:To"] = "",
        };
        foreach (var (k, v) in pacing)
            settings["Lines:0:Pacing:" + k] = v;
        foreach (var (k, v) in agentSettings ?? [])
            settings[k] = v;
        return new AgentFactory(dir, time: new FakeTimeProvider(start), settings: settings,
            services: jitter is null ? null : s => s.AddSingleton(jitter));
    }

    private static object To(string phone, string content = "hi", DateTimeOffset? at = null) =>
        new { content, recipientPhone = phone, scheduledAt = at?.ToString("O") };

    private static DateTimeOffset HandedAt(AgentFactory agent, string id) =>
        DateTimeOffset.Parse(JsonNode.Parse(File.ReadAllText(Directory.GetFiles(agent.OutboxDir, id + ".*.json").Single())).Str("handedAt"));

    [Test]
    public async Task MinGap_ShouldHoldTheNextMessageAsQueuedWithNotBefore_ThenSendItOnTime()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MinGap"] = "00:01:00" });
        using var api = agent.Api();

        var first = await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Created);
        var second = await (await api.SendMessageAsync(To("+12025550102"))).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(first.Str("status"), Is.EqualTo("sent"));
        Assert.That(second.Str("status"), Is.EqualTo("queued"));
        Assert.That(DateTimeOffset.Parse(second.Str("notBefore")), Is.EqualTo(t0.AddMinutes(1)));
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{second.Str("id")}/events"))!;
        Assert.That(events.Last().Str("code"), Is.EqualTo("paced"));
        Assert.That(events.Last().Str("detail"), Does.Contain("minimum gap"));

        await agent.AdvanceToAsync(t0.AddMinutes(1));
        await Eventually.TrueAsync(() => agent.OutboxFileCount(second.Str("id")) == 1, "second sent");
        Assert.That(HandedAt(agent, second.Str("id")), Is.EqualTo(t0.AddMinutes(1)));
    }

    /// <summary>
    /// The gap counts from when the previous send came back from its channel, not from its hand-off: a send that takes 30 s
    /// (a slow Messages) of a 60 s gap left 30 s before the next (probe J: 0.67 s of a 5 s gap after a 3 s script).
    /// </summary>
    [Test]
    public async Task MinGap_ShouldCountFromWhenThePreviousSendEnded_NotFromItsHandOff()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MinGap"] = "00:01:00" }, agentSettings: new() { ["Agent:DryRunSendDelay"] = "00:00:30" });
        using var api = agent.Api();
        var first = await (await api.SendMessageAsync(To("+12025550111", "one", t0.AddSeconds(1)))).ExpectAsync(HttpStatusCode.Created);
        var second = await (await api.SendMessageAsync(To("+12025550112", "two", t0.AddSeconds(1)))).ExpectAsync(HttpStatusCode.Created);

        await agent.AdvanceToAsync(t0.AddSeconds(1));
        // The worker waits for the send (not asleep): the clock is moved a second at a time until the send's 30 s are over (its
        // timer may be set a moment after the hand-off). The outbox file says when the send ended.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        for (var s = 2; agent.OutboxFileCount(first.Str("id")) == 0; s++)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the first send ended");
            agent.Time.SetUtcNow(t0.AddSeconds(Math.Min(s, 120)));
            await Task.Delay(20);
        }
        var ended = HandedAt(agent, first.Str("id"));
        Assert.That(ended, Is.GreaterThanOrEqualTo(t0.AddSeconds(31)), "the send took its 30 s");

        var held = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{second.Str("id")}")!, m => m.StrOrNull("notBefore") is not null,
            "the second held for the gap");
        // 60 s after the first send ended (its hand-off was at +1 s); the clock may have moved a second past the end before
        // the send came back.
        Assert.That(DateTimeOffset.Parse(held.Str("notBefore")), Is.InRange(ended.AddSeconds(60), ended.AddSeconds(61)), held.ToJsonString());
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{second.Str("id")}/events"))!;
        Assert.That(events.Last().Str("detail"), Does.Contain("after the last send ended"));
    }

    [Test]
    public async Task Jitter_ShouldAddUpToItsLengthToTheGap()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MinGap"] = "00:01:00", ["Jitter"] = "00:00:30" });
        using var api = agent.Api();
        await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Created);
        var notBefores = new List<DateTimeOffset>();
        for (var i = 0; i < 5; i++)
        {
            var held = await (await api.SendMessageAsync(To("+12025550101", $"m{i}"))).ExpectAsync(HttpStatusCode.Accepted);
            notBefores.Add(DateTimeOffset.Parse(held.Str("notBefore")));
        }
        Assert.That(notBefores, Is.All.InRange(t0.AddSeconds(60), t0.AddSeconds(90)));
    }

    [Test]
    public async Task HourlyCap_ShouldHoldUntilTheOldestSendLeavesTheHour()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MaxPerHour"] = "2" });
        using var api = agent.Api();
        await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Created);
        agent.Time.Advance(TimeSpan.FromMinutes(10));
        await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Created);

        var third = await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(DateTimeOffset.Parse(third.Str("notBefore")), Is.EqualTo(t0.AddHours(1)));
        // The line says when it sends again, and why (probe J: nothing in /api/lines did).
        var held = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["usage"]!;
        Assert.That(DateTimeOffset.Parse(held.Str("heldUntil")), Is.EqualTo(t0.AddHours(1)));
        Assert.That(held.Str("heldBecause"), Is.EqualTo("2 sends per hour reached"));
        Assert.That(held["newConversationsHeldUntil"], Is.Null);
        await agent.AdvanceToAsync(t0.AddHours(1));
        await Eventually.TrueAsync(() => agent.OutboxFileCount(third.Str("id")) == 1, "third sent");
        var usage = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["usage"]!;
        Assert.That(usage["sentLastHour"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That(usage["sentToday"]!.GetValue<int>(), Is.EqualTo(3));
        Assert.That(usage["maxPerHour"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That(DateTimeOffset.Parse(usage.Str("heldUntil")), Is.EqualTo(t0.AddMinutes(70)), "the second send leaves the hour");
    }

    [Test]
    public async Task DailyCap_ShouldHoldUntilTheNextDayInTheLinesTimeZone()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 20, 0, 0, TimeSpan.Zero); // 15:00 in New York
        using var agent = Agent(t0, new() { ["MaxPerDay"] = "2", ["Window:TimeZone"] = "America/New_York" });
        using var api = agent.Api();
        await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Created);

        var third = await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Accepted);

        // Midnight in New York on 27 November 2026 (EST, UTC-5) = 05:00Z.
        Assert.That(DateTimeOffset.Parse(third.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 11, 27, 5, 0, 0, TimeSpan.Zero)));
    }

    [Test]
    public async Task NewConversationCap_ShouldHoldOnlyMessagesToNewAddresses()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MaxNewConversationsPerDay"] = "1" });
        using var api = agent.Api();
        await (await api.SendMessageAsync(To("+12025550101", "to Ana"))).ExpectAsync(HttpStatusCode.Created);

        var toBob = await (await api.SendMessageAsync(To("+12025550102", "to Bob"))).ExpectAsync(HttpStatusCode.Accepted);
        var toAnaAgain = await (await api.SendMessageAsync(To("+12025550101", "to Ana again"))).ExpectAsync(HttpStatusCode.Created);

        Assert.That(DateTimeOffset.Parse(toBob.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 11, 27, 0, 0, 0, TimeSpan.Zero)));
        Assert.That(toAnaAgain.Str("status"), Is.EqualTo("sent"), "an existing conversation is not held by the new-conversation cap");
        var usage = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["usage"]!;
        Assert.That(usage["newConversationsToday"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(usage["heldUntil"], Is.Null, "a message to a known address may go now");
        Assert.That(DateTimeOffset.Parse(usage.Str("newConversationsHeldUntil")), Is.EqualTo(new DateTimeOffset(2026, 11, 27, 0, 0, 0, TimeSpan.Zero)));
    }

    /// <summary>
    /// A line that is not paced still records which sends opened a conversation: turned on later that day (a restart), the
    /// new-conversation cap counts them. Before, an unpaced line recorded none (newConversationsToday 0), and the cap
    /// started from 0.
    /// </summary>
    [Test]
    public async Task AnUnpacedLine_ShouldCountItsNewConversations_SoPacingTurnedOnLaterThatDayKnowsThem()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var dir = new TempDir();
        using (var unpaced = Agent(t0, new() { ["Enabled"] = "false", ["MaxNewConversationsPerDay"] = "2" }, dir))
        {
            using var api = unpaced.Api();
            foreach (var (phone, text) in new[] { ("+12025550101", "to Ana"), ("+12025550101", "to Ana again"), ("+12025550102", "to Bob") })
                Assert.That((await (await api.SendMessageAsync(To(phone, text))).ExpectAsync(HttpStatusCode.Created)).Str("status"), Is.EqualTo("sent"));
            var usage = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["usage"]!;
            Assert.That((usage["pacingEnabled"]!.GetValue<bool>(), usage["sentToday"]!.GetValue<int>(), usage["newConversationsToday"]!.GetValue<int>()),
                Is.EqualTo((false, 3, 2)), usage.ToJsonString());
        }

        using var paced = Agent(t0.AddMinutes(5), new() { ["MaxNewConversationsPerDay"] = "2" }, dir);
        using var pacedApi = paced.Api();
        var toCarol = await (await pacedApi.SendMessageAsync(To("+12025550103", "to Carol"))).ExpectAsync(HttpStatusCode.Accepted);
        Assert.That((toCarol.Str("status"), DateTimeOffset.Parse(toCarol.Str("notBefore"))),
            Is.EqualTo(("queued", new DateTimeOffset(2026, 11, 27, 0, 0, 0, TimeSpan.Zero))), toCarol.ToJsonString());
        var toBob = await (await pacedApi.SendMessageAsync(To("+12025550102", "to Bob again"))).ExpectAsync(HttpStatusCode.Created);
        Assert.That(toBob.Str("status"), Is.EqualTo("sent"), "Bob's conversation is known");
    }

    /// <summary>
    /// Probe L: messages held by a closed window stayed held until it would have opened after a restart that opened the
    /// window all day (a hold is only ever lengthened), while /api/lines said the line was free and a newer message went
    /// first. Changed settings decide the held messages again, in due order; unchanged ones leave them held.
    /// </summary>
    [Test]
    public async Task ARestartWithOtherPacing_ShouldDecideTheHeldMessagesAgain()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var dir = new TempDir();
        var closed = new Dictionary<string, string?> { ["Window:From"] = "08:00", ["Window:To"] = "09:00" };
        string first, second;
        using (var agent = Agent(t0, closed, dir))
        {
            using var api = agent.Api();
            first = (await (await api.SendMessageAsync(To("+12025550101", "first"))).ExpectAsync(HttpStatusCode.Accepted)).Str("id");
            agent.Time.Advance(TimeSpan.FromSeconds(1));
            second = (await (await api.SendMessageAsync(To("+12025550102", "second"))).ExpectAsync(HttpStatusCode.Accepted)).Str("id");
        }
        using (var same = Agent(t0.AddMinutes(1), closed, dir))
        {
            using var api = same.Api();
            // Each start ends the holds and the line's worker decides them again (CI stop 41 read the row before it had:
            // 15:01, the start's time): the worker asleep has decided them.
            await Eventually.ValueAsync(() => same.Dispatcher.SleepingUntil("default"), "the line's worker to decide the holds and sleep");
            Assert.That(DateTimeOffset.Parse((await api.GetJsonAsync($"/api/messages/{first}")).Str("notBefore")),
                Is.EqualTo(new DateTimeOffset(2026, 11, 27, 8, 0, 0, TimeSpan.Zero)), "the same settings: still held");
        }

        using var open = Agent(t0.AddMinutes(2), new() { ["MinGap"] = "00:00:10" }, dir);
        using var openApi = open.Api();
        await open.AdvanceToAsync(t0.AddMinutes(3));
        await Eventually.TrueAsync(() => open.OutboxFileCount(first) == 1 && open.OutboxFileCount(second) == 1, "both sent");
        Assert.That(HandedAt(open, first), Is.LessThan(HandedAt(open, second)), "in due order");
        var events = (await openApi.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{first}/events"))!;
        Assert.That(events.Select(e => e.StrOrNull("detail")), Has.Some.Contains("pacing settings changed"));
    }

    /// <summary>
    /// Review: a hold of the last run's (within a gap, the last send's end as that run saw it) is only ever lengthened, so a
    /// newer message held by this run to an earlier time went first. Each start decides the held messages again: here a
    /// hold left a day long in the database (as a stale one) ends when this run's own rules say.
    /// </summary>
    [Test]
    public async Task EachStart_ShouldDecideHeldMessagesAgain_WithTheSameSettings()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var dir = new TempDir();
        var gap = new Dictionary<string, string?> { ["MinGap"] = "00:01:00" };
        string held;
        using (var agent = Agent(t0, gap, dir))
        {
            using var api = agent.Api();
            await (await api.SendMessageAsync(To("+12025550101", "first"))).ExpectAsync(HttpStatusCode.Created);
            held = (await (await api.SendMessageAsync(To("+12025550101", "held"))).ExpectAsync(HttpStatusCode.Accepted)).Str("id");
        }
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={dir.File("lineagent.db")};Pooling=False"))
        {
            db.Open();
            using var stale = db.CreateCommand();
            stale.CommandText = "UPDATE messages SET not_before = not_before + 86400000 WHERE id = $id";
            stale.Parameters.AddWithValue("$id", held);
            Assert.That(stale.ExecuteNonQuery(), Is.EqualTo(1));
        }

        using var again = Agent(t0.AddSeconds(30), gap, dir);
        using var againApi = again.Api();
        await again.AdvanceToAsync(t0.AddMinutes(2));
        await Eventually.TrueAsync(() => again.OutboxFileCount(held) == 1, "sent after the gap, not a day later");
        Assert.That(HandedAt(again, held), Is.EqualTo(t0.AddMinutes(1)));
    }

    /// <summary>
    /// Review: a deferred send (the channel busy for a moment: Messages with another line's script, the outbox refused) was
    /// held alone, and the line's next message went first when the channel was free again. The line's messages on that
    /// channel wait with it.
    /// </summary>
    [Test]
    public async Task ADeferredSend_ShouldHoldItsLine_SoTheNextMessageDoesNotGoFirst()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["Enabled"] = "false" });
        using var api = agent.Api();
        if (Directory.Exists(agent.OutboxDir))
            Directory.Delete(agent.OutboxDir, recursive: true);
        File.WriteAllText(agent.OutboxDir, "not a directory"); // the outbox cannot be written: the send is deferred
        var first = await (await api.SendMessageAsync(To("+12025550101", "first"))).ExpectAsync(HttpStatusCode.Accepted);
        File.Delete(agent.OutboxDir);
        Directory.CreateDirectory(agent.OutboxDir);

        var second = await (await api.SendMessageAsync(To("+12025550102", "second"))).ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(DateTimeOffset.Parse(second.Str("notBefore")), Is.EqualTo(DateTimeOffset.Parse(first.Str("notBefore"))), "waits with the first");
        await agent.AdvanceToAsync(t0.AddMinutes(1));
        await Eventually.TrueAsync(() => agent.OutboxFileCount(first.Str("id")) == 1 && agent.OutboxFileCount(second.Str("id")) == 1, "both sent");
        Assert.That(HandedAt(agent, second.Str("id")), Is.GreaterThanOrEqualTo(HandedAt(agent, first.Str("id"))));
    }

    /// <summary>
    /// Sends started together on an unpaced line (up to 16 on the dry-run outbox) are checked before each other's hand-offs
    /// are written: two messages to one new address (two leads sharing a phone) counted as two new conversations (review).
    /// </summary>
    [Test]
    public async Task TwoMessagesToOneNewAddress_SentTogether_ShouldOpenOneConversation()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["Enabled"] = "false" });
        using var api = agent.Api();
        var ids = new List<string>();
        foreach (var (phone, text) in new[] { ("+12025550101", "one"), ("+12025550101", "two"), ("+12025550102", "three") })
            ids.Add((await (await api.SendMessageAsync(To(phone, text, t0.AddMinutes(1)))).ExpectAsync(HttpStatusCode.Created)).Str("id"));

        await agent.AdvanceToAsync(t0.AddMinutes(1));
        await Eventually.TrueAsync(() => ids.All(id => agent.OutboxFileCount(id) == 1), "all three sent");
        var usage = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["usage"]!;
        Assert.That((usage["sentToday"]!.GetValue<int>(), usage["newConversationsToday"]!.GetValue<int>()), Is.EqualTo((3, 2)), usage.ToJsonString());
    }

    [TestCase("2027-03-13T23:00:00Z", "2027-03-14T13:00:00Z", TestName = "Window_ShouldOpenAt9InNewYork_AcrossTheSpringDstChange")]
    [TestCase("2027-11-06T22:00:00Z", "2027-11-07T14:00:00Z", TestName = "Window_ShouldOpenAt9InNewYork_AcrossTheAutumnDstChange")]
    [TestCase("2027-03-12T23:00:00Z", "2027-03-15T13:00:00Z", TestName = "Window_ShouldSkipDaysThatAreNotAllowed")]
    public async Task Window_ShouldHoldUntilItOpens(string now, string opens)
    {
        var t0 = DateTimeOffset.Parse(now);
        var days = TestContext.CurrentContext.Test.Name.Contains("Skip") ? new[] { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday" } : [];
        var settings = new Dictionary<string, string?>
        {
            ["Window:From"] = "09:00", ["Window:To"] = "17:00", ["Window:TimeZone"] = "America/New_York",
        };
        for (var i = 0; i < days.Length; i++)
            settings[$"Window:Days:{i}"] = days[i];
        using var agent = Agent(t0, settings);
        using var api = agent.Api();

        var held = await (await api.SendMessageAsync(To("+12025550101"))).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(DateTimeOffset.Parse(held.Str("notBefore")), Is.EqualTo(DateTimeOffset.Parse(opens)));
        await agent.AdvanceToAsync(DateTimeOffset.Parse(opens));
        await Eventually.TrueAsync(() => agent.OutboxFileCount(held.Str("id")) == 1, "sent when the window opened");
        Assert.That(HandedAt(agent, held.Str("id")), Is.EqualTo(DateTimeOffset.Parse(opens)));
    }

    [Test]
    public async Task ScheduleInATimeZone_ShouldKeepItsWallClockTime_OnBothSidesOfDst()
    {
        using var agent = Agent(new DateTimeOffset(2027, 3, 1, 12, 0, 0, TimeSpan.Zero), new() { ["Enabled"] = "false" });
        using var api = agent.Api();
        var before = await (await api.SendMessageAsync(new { content = "a", recipientPhone = "+12025550101", scheduledAt = "2027-03-13T09:00:00", timeZone = "America/New_York" }))
            .ExpectAsync(HttpStatusCode.Created);
        var after = await (await api.SendMessageAsync(new { content = "b", recipientPhone = "+12025550101", scheduledAt = "2027-03-15T09:00:00", timeZone = "America/New_York" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(before.Str("scheduledAt"), Is.EqualTo("2027-03-13T14:00:00.000Z"), "09:00 EST");
        Assert.That(after.Str("scheduledAt"), Is.EqualTo("2027-03-15T13:00:00.000Z"), "09:00 EDT");

        var moved = await (await api.PatchAsJsonAsync($"/api/messages/{before.Str("id")}", new { scheduledAt = "2027-03-14T02:30:00", timeZone = "America/New_York" }))
            .ExpectAsync(HttpStatusCode.OK);
        Assert.That(moved.Str("scheduledAt"), Is.EqualTo("2027-03-14T07:00:00.000Z"), "02:30 does not exist that night: the next valid minute, 03:00 EDT");
    }

    [Test]
    public async Task SendOrder_ShouldFollowDueTimes_UnderPacing()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MinGap"] = "00:00:10" });
        using var api = agent.Api();
        var offsets = new[] { 5, 1, 3, 2, 4 };
        var ids = new List<string>();
        foreach (var s in offsets)
            ids.Add((await (await api.SendMessageAsync(To("+12025550101", $"at +{s}", t0.AddSeconds(s)))).ExpectAsync(HttpStatusCode.Created)).Str("id"));

        await agent.AdvanceToAsync(t0.AddMinutes(2));
        await Eventually.TrueAsync(() => agent.OutboxFiles().Length == 5, "all five sent");

        var order = ids.OrderBy(id => HandedAt(agent, id)).Select(id => offsets[ids.IndexOf(id)]).ToList();
        Assert.That(order, Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
        var times = ids.Select(id => HandedAt(agent, id)).Order().ToList();
        for (var i = 1; i < times.Count; i++)
            Assert.That(times[i] - times[i - 1], Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(10)));
    }

    /// <summary>Draws one second less for each key it has not seen: a later draw is always shorter.</summary>
    private sealed class ShrinkingJitter : PacingJitter
    {
        private readonly Dictionary<string, TimeSpan> _drawn = [];

        public override TimeSpan Draw(string key, TimeSpan jitter)
        {
            lock (_drawn)
            {
                if (!_drawn.TryGetValue(key, out var d))
                    _drawn[key] = d = jitter - TimeSpan.FromSeconds(_drawn.Count);
                return d;
            }
        }
    }

    /// <summary>
    /// Probe K: a message accepted after others that the gap held drew its own, shorter jitter, was held to an earlier time
    /// than they were, and went out first (a second bulk overtook the first's queued messages). The jitter is the gap's now.
    /// </summary>
    [Test]
    public async Task ALaterMessage_ShouldNotOvertakeEarlierOnesHeldByTheGap()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MinGap"] = "00:01:00", ["Jitter"] = "00:00:30" }, jitter: new ShrinkingJitter());
        using var api = agent.Api();
        await (await api.SendMessageAsync(To("+12025550101", "first"))).ExpectAsync(HttpStatusCode.Created);
        agent.Time.Advance(TimeSpan.FromSeconds(1));
        var earlier = await (await api.SendMessageAsync(To("+12025550101", "earlier"))).ExpectAsync(HttpStatusCode.Accepted);
        agent.Time.Advance(TimeSpan.FromSeconds(1));
        var later = await (await api.SendMessageAsync(To("+12025550101", "later"))).ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(DateTimeOffset.Parse(later.Str("notBefore")), Is.GreaterThanOrEqualTo(DateTimeOffset.Parse(earlier.Str("notBefore"))));

        await agent.AdvanceToAsync(t0.AddMinutes(5));
        await Eventually.TrueAsync(() => agent.OutboxFiles().Length == 3, "all three sent");
        Assert.That(HandedAt(agent, earlier.Str("id")), Is.LessThan(HandedAt(agent, later.Str("id"))), "in the order they were due");
    }

    [Test]
    public async Task PacingDisabled_ShouldSendBackToBack()
    {
        var t0 = new DateTimeOffset(2026, 11, 26, 15, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["Enabled"] = "false", ["MinGap"] = "00:10:00", ["MaxPerHour"] = "1" });
        using var api = agent.Api();
        for (var i = 0; i < 3; i++)
            await (await api.SendMessageAsync(To("+12025550101", $"m{i}"))).ExpectAsync(HttpStatusCode.Created);
    }
}
