using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Sequences;

/// <summary>
/// Follow-ups through the Messages emulator (a chat.db that Messages writes). The agent runs on a FakeTimeProvider and
/// the emulator's clock is moved with it (control.json clockOffsetMs), so two days pass in a moment for both.
/// </summary>
public sealed class FollowUpRepliesTests
{
    private TempDir _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDir();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private static DateTimeOffset At(JsonNode? node, string name) => DateTimeOffset.Parse(node.Str(name));

    [Test]
    public async Task LeadWhoReplies_ShouldGetNoFollowUps_WhileTheOthersGetThemTwoDaysAfterTheirActualSends()
    {
        var messages = new MessagesEmulator(_dir.File("messages"));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        void MessagesClockAt(DateTimeOffset fake) => messages.Control(new
        {
            confirmDelayMs = 100, deliverDelayMs = 100, clockOffsetMs = (fake - DateTimeOffset.UtcNow).TotalMilliseconds,
        });
        MessagesClockAt(time.GetUtcNow());
        using var agent = new AgentFactory(time: time, settings: messages.Settings());
        using var api = agent.Api();

        var phones = new Dictionary<string, string> { ["Ana"] = "+12025550101", ["Ben"] = "+12025550102", ["Cleo"] = "+12025550103" };
        var leads = new Dictionary<string, string>();
        foreach (var (name, phone) in phones)
            leads[name] = (await (await api.PostAsJsonAsync("/api/leads", new { firstName = name, phone })).ExpectAsync(HttpStatusCode.Created)).Str("id");

        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = leads.Values.ToArray(), content = "Hi {{firstName}}, are you free Friday?", type = "imessage",
            followUps = new[]
            {
                new { after = "P2D", content = "{{firstName}}, any thoughts on Friday?" },
                new { after = "P2D", content = "Last note from me, {{firstName}}." },
            },
        })).ExpectAsync(HttpStatusCode.Accepted);
        var sequenceOf = bulk["messages"]!.AsArray().ToDictionary(m => m.Str("leadId"), m => m.Str("sequenceId"));
        async Task<List<JsonObject>> Steps(string name) =>
            (await api.GetJsonAsync($"/api/sequences/{sequenceOf[leads[name]]}"))["steps"]!.AsArray().Select(s => s!.AsObject()).ToList();
        async Task<List<JsonObject>> Until(string name, Func<List<JsonObject>, bool> done, string what) =>
            await Eventually.ValueAsync(() => Steps(name)!, done, $"{name}: {what}", TimeSpan.FromSeconds(40));

        // Step 0 goes out to all three and chat.db confirms it.
        var first = new Dictionary<string, JsonObject>();
        foreach (var name in phones.Keys)
            first[name] = (await Until(name, s => s[0].Str("status") == "sent", "step 0 sent"))[0];

        // Ana answers after her first message.
        var replyAt = At(first["Ana"], "sentAt") + TimeSpan.FromSeconds(1);
        messages.Incoming(phones["Ana"], "Thanks, but not interested", date: replyAt);

        var ana = await Until("Ana", s => s[1].Str("status") == "cancelled" && s[2].Str("status") == "cancelled", "follow-ups cancelled by her reply");
        Assert.That(ana.Skip(1).Select(s => s["error"].Str("code")), Is.All.EqualTo("replied"));
        var replies = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{first["Ana"].Str("id")}/replies"))!;
        Assert.That(replies.Select(r => r.Str("content")), Is.EqualTo(new[] { "Thanks, but not interested" }));
        var cancelEvent = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{ana[1].Str("id")}/events"))!.Last();
        Assert.That((cancelEvent.Str("status"), cancelEvent.Str("code")), Is.EqualTo(("cancelled", "replied")));
        Assert.That(cancelEvent.Str("detail"), Does.Contain(replies[0].Str("id")), "the event names the reply");
        Assert.That((await api.GetJsonAsync($"/api/sequences/{sequenceOf[leads["Ana"]]}")).Str("stoppedBy"), Is.EqualTo("replied"));

        // Ben and Cleo: step 1 is due exactly two days after step 0's actual sentAt (chat.db's date).
        var due1 = new Dictionary<string, DateTimeOffset>();
        foreach (var name in new[] { "Ben", "Cleo" })
        {
            var steps = await Steps(name);
            due1[name] = At(steps[1], "scheduledAt");
            Assert.That(due1[name], Is.EqualTo(At(first[name], "sentAt") + TimeSpan.FromDays(2)), name);
            Assert.That(steps[2]["waitingForPreviousStep"]!.GetValue<bool>(), Is.True);
        }

        // Two days later for the agent and for Messages.
        var day2 = due1.Values.Max();
        MessagesClockAt(day2);
        time.SetUtcNow(day2);
        var second = new Dictionary<string, JsonObject>();
        foreach (var name in new[] { "Ben", "Cleo" })
            second[name] = (await Until(name, s => s[1].Str("status") == "sent", "step 1 sent"))[1];
        Assert.That(second.Values.Select(s => s.Str("content")), Is.EquivalentTo(new[] { "Ben, any thoughts on Friday?", "Cleo, any thoughts on Friday?" }));

        var due2 = new Dictionary<string, DateTimeOffset>();
        foreach (var name in new[] { "Ben", "Cleo" })
        {
            due2[name] = At((await Steps(name))[2], "scheduledAt");
            Assert.That(due2[name], Is.EqualTo(At(second[name], "sentAt") + TimeSpan.FromDays(2)), name);
        }
        var day4 = due2.Values.Max();
        MessagesClockAt(day4);
        time.SetUtcNow(day4);
        foreach (var name in new[] { "Ben", "Cleo" })
        {
            await Until(name, s => s[2].Str("status") == "sent", "step 2 sent");
            Assert.That((await api.GetJsonAsync($"/api/sequences/{sequenceOf[leads[name]]}")).Str("status"), Is.EqualTo("completed"));
        }

        var sendsTo = messages.Calls().Where(c => c.Script == "send.applescript").GroupBy(c => MessagesEmulator.Utf8(c.Argv[1]))
            .ToDictionary(g => g.Key, g => g.Count());
        Assert.That(sendsTo, Is.EquivalentTo(new Dictionary<string, int> { [phones["Ana"]] = 1, [phones["Ben"]] = 3, [phones["Cleo"]] = 3 }));
    }

    /// <summary>The agent and the emulator on one FakeTimeProvider (control.json clockOffsetMs moves the emulator with it).</summary>
    private sealed class Campaign : IDisposable
    {
        public readonly MessagesEmulator Messages;
        public readonly FakeTimeProvider Time = new(DateTimeOffset.UtcNow);
        public readonly TempDir Data = new();
        public AgentFactory? Agent;

        private readonly object? _control;

        /// <param name="control">control.json for the emulator (the clock offset is added); default: quick confirmations.</param>
        public Campaign(string home, object? control = null)
        {
            Messages = new MessagesEmulator(home);
            _control = control;
            ClockAt(Time.GetUtcNow());
        }

        /// <summary>Moves the agent's clock and the emulator's together.</summary>
        public void ClockAt(DateTimeOffset fake)
        {
            var node = _control is null
                ? new JsonObject { ["confirmDelayMs"] = 100, ["deliverDelayMs"] = 100 }
                : System.Text.Json.JsonSerializer.SerializeToNode(_control)!.AsObject();
            node["clockOffsetMs"] = (fake - DateTimeOffset.UtcNow).TotalMilliseconds;
            Messages.Control(node);
            Time.SetUtcNow(fake);
        }

        public HttpClient Start()
        {
            Agent = new AgentFactory(Data, Time, Messages.Settings());
            return Agent.Api();
        }

        public void Stop()
        {
            Agent?.Dispose();
            Agent = null;
        }

        public int SendsTo(string recipient) =>
            Messages.Calls().Count(c => c.Script == "send.applescript" && MessagesEmulator.Utf8(c.Argv[1]) == recipient);

        public void Dispose()
        {
            Stop();
            Data.Dispose();
        }
    }

    private static async Task<List<JsonObject>> StepsAsync(HttpClient api, string sequenceId) =>
        (await api.GetJsonAsync($"/api/sequences/{sequenceId}"))["steps"]!.AsArray().Select(s => s!.AsObject()).ToList();

    private static Task<List<JsonObject>> UntilAsync(HttpClient api, string sequenceId, Func<List<JsonObject>, bool> done, string what) =>
        Eventually.ValueAsync(() => StepsAsync(api, sequenceId)!, done, what, TimeSpan.FromSeconds(40));

    private static async Task<string> SequenceToAsync(HttpClient api, object lead, string? type = null)
    {
        var leadId = (await (await api.PostAsJsonAsync("/api/leads", lead)).ExpectAsync(HttpStatusCode.Created)).Str("id");
        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = new[] { leadId }, content = "Hi {{firstName}}, are you free Friday?", type, stopOnReply = true,
            followUps = new[] { new { after = "P1D", content = "{{firstName}}, any thoughts on Friday?" } },
        })).ExpectAsync(HttpStatusCode.Accepted);
        return bulk["messages"]![0].Str("sequenceId");
    }

    /// <summary>
    /// A STOP that reaches chat.db while the agent is down (a restart, a Mac asleep) is read before the dispatcher claims
    /// anything: the follow-up that fell due meanwhile is not sent, and the sender is suppressed. Before, the dispatcher
    /// started first and handed the follow-up to Messages 19 ms before the watcher read the STOP.
    /// </summary>
    [Test]
    public async Task AStopThatArrivesWhileTheAgentIsDown_ShouldStopTheFollowUpThatFellDueMeanwhile()
    {
        using var campaign = new Campaign(_dir.File("messages"));
        const string phone = "+12025550501";
        var api = campaign.Start();
        var sequence = await SequenceToAsync(api, new { firstName = "Finn", phone });
        var first = (await UntilAsync(api, sequence, s => s[0].Str("status") == "sent", "step 0 sent"))[0];
        var followUpDue = At((await StepsAsync(api, sequence))[1], "scheduledAt");
        campaign.Stop();

        campaign.Messages.Incoming(phone, "STOP", date: At(first, "sentAt") + TimeSpan.FromMinutes(5));
        campaign.ClockAt(followUpDue + TimeSpan.FromMinutes(1)); // the follow-up is due when the agent comes back
        api = campaign.Start();

        var steps = await UntilAsync(api, sequence, s => s[1].Str("status") is "cancelled" or "failed" or "sent", "the follow-up settled");
        Assert.That((steps[1].Str("status"), steps[1]["error"].Str("code")), Is.EqualTo(("cancelled", "replied")));
        Assert.That(campaign.SendsTo(phone), Is.EqualTo(1), "only the first message");
        var suppression = await api.GetAsync($"/api/suppressions/{Uri.EscapeDataString(phone)}");
        Assert.That(suppression.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    /// <summary>
    /// A STOP from another handle of the person written to (an iPhone whose iMessage caller ID is the Apple ID email answers
    /// a text to its number from the email) suppresses the number that was written to as well, not only the email.
    /// </summary>
    [Test]
    public async Task AStopFromTheLeadsOtherHandle_ShouldSuppressTheAddressThatWasWrittenTo()
    {
        using var campaign = new Campaign(_dir.File("messages"));
        const string phone = "+12025550302";
        var api = campaign.Start();
        var sequence = await SequenceToAsync(api, new { firstName = "Eve", phone, email = "eve@example.org" });
        var first = (await UntilAsync(api, sequence, s => s[0].Str("status") == "sent", "step 0 sent"))[0];

        campaign.Messages.Incoming("eve@example.org", "STOP", date: At(first, "sentAt") + TimeSpan.FromSeconds(30));

        await UntilAsync(api, sequence, s => s[1].Str("status") == "cancelled", "the follow-up cancelled by the reply");
        foreach (var address in new[] { "eve@example.org", phone })
            Assert.That((await Eventually.ValueAsync(() => api.GetAsync($"/api/suppressions/{Uri.EscapeDataString(address)}")!,
                r => r.StatusCode == HttpStatusCode.OK, $"{address} suppressed", TimeSpan.FromSeconds(10))).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    /// <summary>
    /// START from the other handle lifts what a reply's STOP put on the number written to, but never a suppression that
    /// was added another way (here through the API).
    /// </summary>
    [Test]
    public async Task AStartFromTheLeadsOtherHandle_ShouldLiftOnlyWhatARepliesStopAdded()
    {
        using var campaign = new Campaign(_dir.File("messages"));
        var api = campaign.Start();
        async Task<string> FirstSentTo(string name, string phone, string email)
        {
            var sequence = await SequenceToAsync(api, new { firstName = name, phone, email });
            return (await UntilAsync(api, sequence, s => s[0].Str("status") == "sent", $"{name}: step 0 sent"))[0].Str("sentAt");
        }
        async Task<HttpStatusCode> Suppressed(string address) => (await api.GetAsync($"/api/suppressions/{Uri.EscapeDataString(address)}")).StatusCode;

        var eveSent = DateTimeOffset.Parse(await FirstSentTo("Eve", "+12025550302", "eve@example.org"));
        campaign.Messages.Incoming("eve@example.org", "STOP", date: eveSent + TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(async () => await Suppressed("+12025550302") == HttpStatusCode.OK, "Eve's number suppressed by her STOP");
        campaign.Messages.Incoming("eve@example.org", "START", date: eveSent + TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(async () => await Suppressed("+12025550302") == HttpStatusCode.NotFound, "Eve's START lifts it");

        var zoeSent = DateTimeOffset.Parse(await FirstSentTo("Zoe", "+12025550303", "zoe@example.org"));
        (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550303", reason = "asked on the phone" })).EnsureSuccessStatusCode();
        campaign.Messages.Incoming("zoe@example.org", "START", date: zoeSent + TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/messages?direction=inbound"))["items"]!.AsArray().Count == 3, "the START taken in");
        Assert.That(await Suppressed("+12025550303"), Is.EqualTo(HttpStatusCode.OK), "added through the API: not lifted by a reply from another handle");
    }

    /// <summary>
    /// A step that `auto` routed to iMessage and that fell back to SMS (error 22: the number has no iMessage) takes its
    /// later `auto` steps with it: the follow-up goes as SMS at once, not as an iMessage that fails with 22 again.
    /// </summary>
    [Test]
    public async Task AFollowUpAfterAnSmsFallback_ShouldGoAsSms_NotTryIMessageAgain()
    {
        const string phone = "+12025550107";
        using var campaign = new Campaign(_dir.File("messages"), new { confirmDelayMs = 100, deliverDelayMs = 100, nonImessage = new[] { phone } });
        var api = campaign.Start();
        var sequence = await SequenceToAsync(api, new { firstName = "Gus", phone });

        // The steps in order: the failed iMessage and the SMS that took its place (both step 0), then step 1.
        var steps = await UntilAsync(api, sequence, s => s.Count == 3 && s[1].Str("status") == "sent", "step 0 sent as the SMS fallback");
        Assert.That(steps.Select(x => (x["sequenceStep"]!.GetValue<int>(), x.Str("type"), x.Str("status"))),
            Is.EqualTo(new[] { (0, "imessage", "failed"), (0, "sms", "sent"), (1, "sms", "scheduled") }), "the follow-up rerouted with it");
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{steps[2].Str("id")}/events"))!;
        Assert.That(events.Any(e => e["code"]?.GetValue<string>() == "rerouted" && e["detail"]!.GetValue<string>().Contains("error 22")), Is.True, "its events say why");
        campaign.ClockAt(At(steps[2], "scheduledAt") + TimeSpan.FromSeconds(1));
        await UntilAsync(api, sequence, s => s[2].Str("status") == "sent", "step 1 sent");

        var services = campaign.Messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[0])).ToList();
        Assert.That(services, Is.EqualTo(new[] { "iMessage", "SMS", "SMS" }), "one iMessage attempt (error 22), then SMS for both steps");
    }
}
