using System.Net;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Bridge;

/// <summary>
/// How a sent message's chat.db row comes into being on a real Mac, as projects that run Messages report it: the row may be
/// written after `send` has returned (openclaw/imsg#85), and it may first be inserted as not from me, without a handle, and
/// set a moment later (openclaw/imsg#80, #87). The emulator plays both (`rowAfterReturnMs`, `fromMeLaterMs`).
/// </summary>
public sealed partial class MessagesEndToEndTests
{
    /// <summary>The script returns 1.5 s before Messages writes the row: the send is matched to that row when it comes, and sent once.</summary>
    [Test]
    public async Task ARowMessagesWritesAfterTheScriptReturned_ShouldBeMatched_AndTheMessageSentOnce()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { rowAfterReturnMs = 1500, confirmDelayMs = 100, deliverDelayMs = 100 });

        var m = await (await api.SendMessageAsync(new { content = "Your table is ready", type = "imessage", recipientPhone = "+12025550171" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("status"), Is.EqualTo("sent"), m.ToJsonString());
        Assert.That(m.Str("channelRef"), Is.EqualTo(_messages.Query("SELECT guid FROM message WHERE is_from_me = 1")), "matched to the row Messages wrote after the script");
        var delivered = await Until(api, m.Str("id"), x => x.Str("delivery") == "delivered", "delivered");
        Assert.That(delivered["error"], Is.Null);
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));
    }

    /// <summary>
    /// A sent row first inserted with is_from_me = 0 and no handle, set 1.5 s later: it is not the recipient's reply (a
    /// reply would cancel their stop-on-reply messages, and a STOP in our own text would opt them out), and the send is
    /// matched to it once it is marked ours.
    /// </summary>
    [Test]
    public async Task ASentRowFirstInsertedAsNotFromMe_ShouldNotBeTakenForTheirReply_AndBeMatchedOnceItIsOurs()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { fromMeLaterMs = 1500, confirmDelayMs = 1600, deliverDelayMs = 100 });
        const string phone = "+12025550172";
        var later = await (await api.SendMessageAsync(new
        {
            content = "Checking in tomorrow", recipientPhone = phone, stopOnReply = true, scheduledAt = DateTimeOffset.UtcNow.AddHours(1).ToString("O"),
        })).ExpectAsync(HttpStatusCode.Created);

        var m = await (await api.SendMessageAsync(new { content = "Reply STOP to opt out", type = "imessage", recipientPhone = phone }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("status"), Is.EqualTo("sent"), m.ToJsonString());
        Assert.That(m.Str("channelRef"), Is.EqualTo(_messages.Query("SELECT guid FROM message WHERE is_from_me = 1")));
        await Until(api, m.Str("id"), x => x.Str("delivery") == "delivered", "delivered");
        var inbound = await api.GetJsonAsync("/api/messages?direction=inbound");
        Assert.That(inbound["items"]!.AsArray(), Is.Empty, "our own row is no reply");
        Assert.That((await api.GetJsonAsync($"/api/messages/{later.Str("id")}")).Str("status"), Is.EqualTo("scheduled"), "the stop-on-reply message stays");
        Assert.That((await api.GetAsync($"/api/suppressions/{Uri.EscapeDataString(phone)}")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }
}
