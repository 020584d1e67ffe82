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
}
