using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Bridge;

/// <summary>
/// What a real Mac does that our first guesses got wrong (issue 9), played by the emulator as the projects
/// that run Messages in production report it (tests/MessagesEmulator/README.md cites each behaviour).
/// </summary>
public sealed partial class MessagesEndToEndTests
{
    private static async Task<bool> IsSuppressedAsync(HttpClient api, string address) =>
        (await api.GetAsync($"/api/suppressions/{Uri.EscapeDataString(address)}")).StatusCode == HttpStatusCode.OK;

    private static async Task<List<JsonObject>> RepliesAsync(HttpClient api, string id) =>
        (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{id}/replies"))!;

    /// <summary>Waits until the agent's chat.db reader has read up to <paramref name="rowId"/> (its stored position).</summary>
    private static Task ReadUpToAsync(AgentFactory agent, long rowId) =>
        Eventually.TrueAsync(async () =>
        {
            var db = new LineAgent.Storage.Db(System.IO.Path.Combine(agent.Dir.Path, "lineagent.db"));
            await using var c = await db.OpenAsync();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT value FROM bridge_state WHERE key = 'chatdb.last_rowid'";
            return cmd.ExecuteScalar() is string v && long.Parse(v, CultureInfo.InvariantCulture) >= rowId;
        }, $"chat.db read up to ROWID {rowId}", TimeSpan.FromSeconds(30));

    private long Backfill(string handle, string text, DateTimeOffset date, string service = "iMessage") =>
        long.Parse(_messages.Run("incoming", handle, text, "--service", service, "--date", date.ToString("O", CultureInfo.InvariantCulture)).Trim(),
            CultureInfo.InvariantCulture);

    [Test]
    public async Task AnOldStopBackfilledWithAHighRowId_ShouldChangeNothing_AndAnOldStartShouldNotLiftARealOptOut()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        var sentAt = DateTimeOffset.UtcNow;
        var m = await (await api.SendMessageAsync(new { content = "New offer", recipientPhone = "+12025550301" })).ExpectAsync(HttpStatusCode.Created);

        // iCloud re-inserts a STOP from last year: a new, higher ROWID, the original date.
        var old = Backfill("+12025550301", "STOP", sentAt.AddDays(-300));
        Assert.That(old, Is.GreaterThan(0));
        await ReadUpToAsync(agent, old);
        Assert.That(await IsSuppressedAsync(api, "+12025550301"), Is.False, "history is not a reply");
        Assert.That(await RepliesAsync(api, m.Str("id")), Is.Empty);

        // A real STOP now, then an old START from before it arrives through sync: the opt-out stands.
        var stop = _messages.Incoming("+12025550301", "STOP");
        await ReadUpToAsync(agent, stop);
        Assert.That(await IsSuppressedAsync(api, "+12025550301"), Is.True);
        var oldStart = Backfill("+12025550301", "START", DateTimeOffset.UtcNow.AddMinutes(-1));
        await ReadUpToAsync(agent, oldStart);
        Assert.That(await IsSuppressedAsync(api, "+12025550301"), Is.True, "a START older than the STOP we took is history");
        Assert.That((await RepliesAsync(api, m.Str("id"))).Select(r => r.Str("content")), Is.EqualTo(new[] { "STOP" }));
    }

    [Test]
    public async Task ABackfilledCopyOfTheLatestReply_ShouldNotBeTakenTwice()
    {
        // iCloud re-inserts a message with a new guid and its original date; a reply dated the same instant as the last one
        // taken is still a reply (Twilio dates to the second), unless it is that one again (same date and text).
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        var m = await (await api.SendMessageAsync(new { content = "Are you in?", recipientPhone = "+12025550303" })).ExpectAsync(HttpStatusCode.Created);
        var at = DateTimeOffset.UtcNow.AddSeconds(1);
        var first = Backfill("+12025550303", "sounds good", at);
        await ReadUpToAsync(agent, first);
        var copy = Backfill("+12025550303", "sounds good", at);
        await ReadUpToAsync(agent, copy);
        Assert.That((await RepliesAsync(api, m.Str("id"))).Select(r => r.Str("content")), Is.EqualTo(new[] { "sounds good" }));
    }

    [Test]
    public async Task AfterChatDbIsReplacedByASmallerOne_ANewStopShouldStillBeSeen_AndHistoryNotReplayed()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        var m = await (await api.SendMessageAsync(new { content = "Checking in", recipientPhone = "+12025550302" })).ExpectAsync(HttpStatusCode.Created);
        var hello = _messages.Incoming("+12025550302", "hello back");
        for (var i = 0; i < 20; i++)
            _messages.Incoming("+12025550399", $"someone else {i}");
        var before = _messages.Incoming("+12025550398", "last before the rebuild");
        await ReadUpToAsync(agent, before);
        Assert.That((await RepliesAsync(api, m.Str("id"))).Select(r => r.Str("content")), Is.EqualTo(new[] { "hello back" }));

        // Messages rebuilds chat.db (or a backup is restored): a new file, rows renumbered from 1.
        // Everything but the first row is kept, renumbered from 1: "hello back" comes back under a new ROWID.
        var max = long.Parse(_messages.Run("rebuild", "--keep", (before - 1).ToString(CultureInfo.InvariantCulture)).Trim(), CultureInfo.InvariantCulture);
        Assert.That(max, Is.LessThan(before), "the rebuilt database is numbered lower than what the agent read");

        var stop = _messages.Incoming("+12025550302", "STOP");
        Assert.That(stop, Is.LessThanOrEqualTo(before));
        await Eventually.TrueAsync(() => IsSuppressedAsync(api, "+12025550302"), "the STOP after the rebuild is seen", TimeSpan.FromSeconds(30));
        Assert.That((await RepliesAsync(api, m.Str("id"))).Select(r => r.Str("content")), Is.EqualTo(new[] { "hello back", "STOP" }),
            "the kept rows (renumbered) are not taken in a second time");
    }

    [Test]
    public async Task ASendWhoseRowIsWrittenAfterChatDbIsRebuilt_ShouldStillBeConfirmed_NotFailedUnconfirmed()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(20));
        using var api = agent.Api();
        for (var i = 0; i < 5; i++)
            _messages.Incoming("+12025550399", $"earlier {i}");
        // The row is written 12 s after the script starts: chat.db is rebuilt (numbered from 1) in between, so the row gets a
        // ROWID below the MAX(ROWID) the agent took before the send.
        _messages.Control(new { sendDelayMs = 12_000, confirmDelayMs = 50, deliverDelayMs = 50 });
        var answer = api.SendMessageAsync(new { content = "Your table is ready", type = "imessage", recipientPhone = "+12025550304" });
        var call = await Eventually.ValueAsync(() => Task.FromResult(_messages.CallRecords().FirstOrDefault(c => c["script"]!.GetValue<string>() == "send.applescript")),
            c => c is not null, "the send script started");
        Assert.That(_messages.Rebuild(keep: 0), Is.Zero);
        // Timed from the call itself (logged before its sendDelayMs), not from when this test noticed it.
        var started = DateTimeOffset.UnixEpoch + TimeSpan.FromSeconds(call!["t"]!.GetValue<double>());
        Assert.That(DateTimeOffset.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(11)), "the rebuild came before the script could have written its row");

        var m = await (await answer).ExpectAsync(HttpStatusCode.Created);
        var sent = await Until(api, m.Str("id"), x => x.Str("status") != "sending", "settled");
        Assert.That(sent.Str("status"), Is.EqualTo("sent"), sent.ToJsonString());
        Assert.That(sent.Str("channelRef"), Does.Match("^[0-9A-F-]{36}$"), "matched to its chat.db row");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "sent once");
    }

    /// <summary>
    /// A rebuild that keeps MAX(ROWID) as high as before and numbers the newest rows below older ones (Spshulem/openAGI#36),
    /// between a send's row and its match: the row lies below the position the agent took before the send, which still
    /// looks usable (MAX(ROWID) is not below it). The row at the reader's position no longer carries the guid seen there, so
    /// the send is matched by its text. Before, it ended `unconfirmed` (maybe sent) after the confirm timeout (fidelity review).
    /// </summary>
    [Test]
    public async Task ARebuildThatKeepsMaxRowIdButMovesTheSendsRowBelowItsPosition_ShouldStillConfirmTheSend()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(15));
        using var api = agent.Api();
        long last = 0;
        for (var i = 0; i < 5; i++)
            last = _messages.Incoming("+12025550398", $"earlier {i}");
        await ReadUpToAsync(agent, last);
        // The script answers 6 s after its row: the rebuild comes in between, before the agent may take the row.
        _messages.Control(new { returnDelayMs = 6000, confirmDelayMs = 50, deliverDelayMs = 50 });
        var answer = api.SendMessageAsync(new { content = "Your table is ready", type = "imessage", recipientPhone = "+12025550306" });
        var ours = await Eventually.ValueAsync(() => Task.FromResult<string?>(_messages.Query("SELECT ROWID FROM message WHERE is_from_me = 1")),
            r => r is { Length: > 0 }, "the send's row is in chat.db");
        var row = long.Parse(ours!, CultureInfo.InvariantCulture);
        await ReadUpToAsync(agent, row);
        var call = _messages.CallRecords().Single(c => c["script"]!.GetValue<string>() == "send.applescript");

        var max = _messages.Rebuild(shuffle: true);
        var started = DateTimeOffset.UnixEpoch + TimeSpan.FromSeconds(call["t"]!.GetValue<double>());
        Assert.That(DateTimeOffset.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(5.5)), "the rebuild came before the script answered");
        Assert.That((max, _messages.Query("SELECT ROWID FROM message WHERE is_from_me = 1")), Is.EqualTo((row, "1")),
            "MAX(ROWID) as before, the send's row at 1");

        var m = await (await answer).ExpectAsync(HttpStatusCode.Created);
        Assert.That(m.Str("status"), Is.EqualTo("sent"), m.ToJsonString());
        Assert.That(m.Str("channelRef"), Is.EqualTo(_messages.Query("SELECT guid FROM message WHERE is_from_me = 1")), "matched to its row");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "sent once");
    }

    /// <summary>
    /// The newest row deleted in Messages (a conversation or a junk text deleted, here or on the iPhone) is no rebuild: the
    /// other rows keep their ROWIDs, so sends keep their positions and no replacement is recorded. The first version of the
    /// check above took the row gone from the reader's position for one, and matched every send in flight by text (review).
    /// </summary>
    [Test]
    public async Task TheNewestRowDeletedInMessages_ShouldNotCountAsARebuiltChatDb()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        _messages.Incoming("+12025550397", "spam 1");
        var newest = _messages.Incoming("+12025550397", "spam 2");
        await ReadUpToAsync(agent, newest);
        // The reader's position is the newest row: deleted, MAX(ROWID) falls below it (chat.db's high-water mark does not).
        Assert.That(_messages.Delete(newest), Is.True);
        var m = await (await api.SendMessageAsync(new { content = "Your table is ready", type = "imessage", recipientPhone = "+12025550307" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(m.Str("status"), Is.EqualTo("sent"), m.ToJsonString());
        var ours = long.Parse(_messages.Query("SELECT ROWID FROM message WHERE is_from_me = 1"), CultureInfo.InvariantCulture);
        Assert.That(ours, Is.GreaterThan(newest), "AUTOINCREMENT: the deleted ROWID is not given again");
        await ReadUpToAsync(agent, ours);

        var db = new LineAgent.Storage.Db(System.IO.Path.Combine(agent.Dir.Path, "lineagent.db"));
        await using var c = await db.OpenAsync();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM bridge_state WHERE key = 'chatdb.replaced_at'";
        Assert.That(Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture), Is.Zero, "a deletion is not a replacement");
    }

    /// <summary>
    /// A send whose row never came, still watched after it failed `unconfirmed`; chat.db is restored (numbered from 1
    /// again); the same text is sent to the person again. The new row is the new send's: the old send's baseline, above
    /// chat.db's MAX(ROWID) now, says nothing and must not put it first (review: ordered by baseline, the old send took the
    /// new send's row, a false `sent`, and the new one ended unconfirmed).
    /// </summary>
    [Test]
    public async Task AfterARestoreOfChatDb_TheResendsRow_ShouldGoToTheResend_NotToTheOldSendStillWatched()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(3));
        using var api = agent.Api();
        for (var i = 0; i < 20; i++)
            _messages.Incoming("+12025550305", $"earlier {i}");
        _messages.Control(new { recordOnly = true });
        var old = await (await api.SendMessageAsync(new { content = "See you at 8", type = "imessage", recipientPhone = "+12025550305" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(old["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));

        Assert.That(_messages.Rebuild(keep: 0), Is.Zero);
        _messages.Control(new { confirmDelayMs = 50 });
        var resend = await (await api.SendMessageAsync(new { content = "See you at 8", type = "imessage", recipientPhone = "+12025550305" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That((resend.Str("status"), resend.StrOrNull("channelRef") is not null), Is.EqualTo(("sent", true)), resend.ToJsonString());
        var oldNow = await api.GetJsonAsync($"/api/messages/{old.Str("messageId")}");
        Assert.That((oldNow.Str("status"), oldNow.StrOrNull("channelRef")), Is.EqualTo(("failed", (string?)null)), oldNow.ToJsonString());
    }

    [Test]
    public async Task AnUnresolvableAddress_ShouldFailAsTheRecipientsProblem_WithoutRetry_AndKeepTheLineHealthy()
    {
        using var agent = Agent(extra: new Dictionary<string, string?> { ["Bridge:HealthCacheFor"] = "01:00:00" });
        using var api = agent.Api();
        _messages.Control(new { unresolvable = new[] { "+12025550303" } });
        var before = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(before["messages"].Str("messages"), Is.EqualTo("reachable"));
        var statusCalls = _messages.Calls().Count(c => c.Script == "status.applescript");

        var problem = await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550303" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("recipient_unresolvable"));
        Assert.That(error["channelCode"]!.GetValue<long>(), Is.EqualTo(-1728));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "the recipient's problem is not retried");
        var after = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(after["health"]!.AsArray().Single(h => h.Str("type") == "imessage")!.Str("state"), Is.EqualTo("ok"));
        Assert.That(_messages.Calls().Count(c => c.Script == "status.applescript"), Is.EqualTo(statusCalls),
            "the health cache was not cleared: Messages is fine");
    }

    [Test]
    public async Task ADoubledTextRow_ShouldConfirmTheSend_ThenDelivered()
    {
        using var agent = Agent();
        using var api = agent.Api();
        // The real attributedBody from imessage-kit's tests: it decodes as "Check this out!Check this out!".
        var blob = System.IO.Path.Combine(AppContext.BaseDirectory, "fixtures", "chatdb", "attributed-body", "CheckThisOut_doubled.bin");
        _messages.Control(new { attributedBodyFile = blob, confirmDelayMs = 100, deliverDelayMs = 100 });

        var m = await (await api.SendMessageAsync(new { content = "Check this out!", type = "imessage", recipientPhone = "+12025550304" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("status"), Is.EqualTo("sent"));
        var delivered = await Until(api, m.Str("id"), x => x.Str("delivery") == "delivered", "delivered");
        Assert.That(delivered.Str("channelRef"), Is.Not.Null);
    }

    [Test]
    public async Task AMessageWithALink_ShouldMatchItsTextRow_NotThePreviewRow()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { urlPreview = true, confirmDelayMs = 100, deliverDelayMs = 100 });

        var m = await (await api.SendMessageAsync(new { content = "The deck: https://example.com/deck", type = "imessage", recipientPhone = "+12025550305" }))
            .ExpectAsync(HttpStatusCode.Created);
        var link = await (await api.SendMessageAsync(new { content = "https://example.com/pricing", type = "imessage", recipientPhone = "+12025550305" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That((m.Str("status"), link.Str("status")), Is.EqualTo(("sent", "sent")));
        var rows = _messages.Run("dump").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        var deckRow = rows.Single(r => r["guid"]!.GetValue<string>() == m.Str("channelRef"));
        Assert.That(deckRow["text"]!.GetValue<string>(), Is.EqualTo("The deck: https://example.com/deck"));
        Assert.That(rows.Count(r => r["is_from_me"]!.GetValue<long>() == 1), Is.EqualTo(4), "two texts, two preview rows");
        Assert.That(link.Str("channelRef"), Is.Not.EqualTo(m.Str("channelRef")));
        await Until(api, link.Str("id"), x => x.Str("delivery") == "delivered", "the link-only message delivered");
    }

    [Test]
    public async Task AnSmsRowWithError22_ShouldLeaveIMessageAvailabilityUnchanged()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { smsUndeliverable = new[] { "+12025550306" }, confirmDelayMs = 100, deliverDelayMs = 100 });
        var blue = await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550306" })).ExpectAsync(HttpStatusCode.Created);
        await Until(api, blue.Str("id"), x => x.Str("delivery") == "delivered", "delivered");
        Assert.That((await api.GetJsonAsync("/api/availability?address=%2B12025550306")).Str("imessage"), Is.EqualTo("available"));

        var problem = await (await api.SendMessageAsync(new { content = "by text", type = "sms", recipientPhone = "+12025550306" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("not_deliverable"), "error 22 on an SMS row is about SMS, not iMessage");
        Assert.That(error["channelCode"]!.GetValue<long>(), Is.EqualTo(22));
        Assert.That(problem["message"].StrOrNull("fallbackTo"), Is.Null);
        var availability = await api.GetJsonAsync("/api/availability?address=%2B12025550306");
        Assert.That((availability.Str("imessage"), availability.Str("sendAs")), Is.EqualTo(("available", "imessage")));
    }

    [Test]
    public async Task AnInboundRcsConversation_ShouldMakeTheAddressGray()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Incoming("+12025550307", "hey, new phone", "RCS");

        var availability = await api.GetJsonAsync("/api/availability?address=%2B12025550307");

        Assert.That((availability.Str("imessage"), availability.Str("sendAs"), availability.Str("source")),
            Is.EqualTo(("unavailable", "sms", "messages-db")));
    }

    [Test]
    public async Task ARcsAccount_ShouldShowInLineHealth()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { rcsAccount = true });
        var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(line["messages"].Str("rcsAccount"), Is.EqualTo("available"));
        _messages.Control(new { rcsAccount = false });
        line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(line["messages"].Str("rcsAccount"), Is.EqualTo("missing"));
    }

    [Test]
    public async Task HealthChecks_ShouldNotLaunchAQuitMessages_ButASendShould()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Run("quit");

        for (var i = 0; i < 3; i++)
        {
            var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
            Assert.That(line["messages"].Str("messages"), Is.EqualTo("not_running"));
            Assert.That(line["health"]!.AsArray().Single(h => h.Str("type") == "imessage")!.Str("detail"), Does.Contain("not running"));
        }
        Assert.That(State()["launches"]?.GetValue<int>() ?? 0, Is.Zero, "three health checks, Messages still not launched");

        _messages.Control(new { confirmDelayMs = 100 });
        var m = await (await api.SendMessageAsync(new { content = "wakes it up", type = "imessage", recipientPhone = "+12025550308" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(m.Str("status"), Is.EqualTo("sent"));
        Assert.That(State()["launches"]!.GetValue<int>(), Is.EqualTo(1), "`tell application \"Messages\"` in send launches it");
    }

    [Test]
    public async Task ASendHeldFortySecondsByTheConsentDialog_ShouldCompleteAsSent_AndReachMessagesOnce()
    {
        // The first Automation prompt holds the Apple event until the user answers; the default hard kill outlasts it.
        using var agent = Agent(scriptTimeout: new LineAgent.Bridge.BridgeOptions().ScriptTimeout);
        using var api = agent.Api();
        _messages.Control(new { consentPromptMs = 40_000, confirmDelayMs = 100 });

        var answer = await (await api.SendMessageAsync(new { content = "first send on this Mac", type = "imessage", recipientPhone = "+12025550309" }))
            .ExpectAsync(HttpStatusCode.Created);

        var sent = answer.Str("status") == "sent" ? answer
            : await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{answer.Str("id")}")!, x => x.Str("status") != "sending", "settled", TimeSpan.FromSeconds(90));
        Assert.That(sent.Str("status"), Is.EqualTo("sent"));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));
        Assert.That(_messages.Calls().Count(c => c.Script == "restart-messages.applescript"), Is.Zero, "a slow first send is not a hung Messages");
    }

    private JsonNode State() => JsonNode.Parse(_messages.Run("state"))!;
}
