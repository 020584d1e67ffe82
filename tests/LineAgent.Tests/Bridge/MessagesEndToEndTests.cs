using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Bridge;

/// <summary>
/// The agent through its HTTP API, with the Messages emulator as its osascript writing into a chat.db
/// made from Apple's schema. Real time: the emulator writes real timestamps.
/// </summary>
public sealed partial class MessagesEndToEndTests
{
    private TempDir _dir = null!;
    private MessagesEmulator _messages = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDir();
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private AgentFactory Agent(int macOs = 26, IDictionary<string, string?>? extra = null, TimeSpan? confirmTimeout = null, TimeSpan? scriptTimeout = null,
        TempDir? dataDir = null)
    {
        _messages = new MessagesEmulator(_dir.File("messages"), macOs);
        var settings = _messages.Settings(confirmTimeout, scriptTimeout);
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
            settings[k] = v;
        return new AgentFactory(dataDir, settings: settings, systemClock: true);
    }

    private static Task<JsonObject> Until(HttpClient api, string id, Func<JsonObject, bool> done, string what) =>
        Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{id}")!, done, what, TimeSpan.FromSeconds(30));

    [TestCase(15)]
    [TestCase(26)]
    public async Task IMessage_ShouldBeConfirmedThenDeliveredThenRead(int macOs)
    {
        using var agent = Agent(macOs);
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 200, deliverDelayMs = 200, readDelayMs = 200 });

        var m = await (await api.SendMessageAsync(new { content = "Hi Ana, it's Sam", type = "imessage", recipientPhone = "+12025550123" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("status"), Is.EqualTo("sent"), "the send-now answer waits for chat.db to confirm");
        Assert.That(m.Str("channel"), Is.EqualTo("messages"));
        Assert.That(m.Str("channelRef"), Does.Match("^[0-9A-F-]{36}$"), "the Messages guid");
        var read = await Until(api, m.Str("id"), x => x.Str("delivery") == "read", "read");
        Assert.That(read.Str("deliveredAt"), Is.Not.Null);
        Assert.That(DateTimeOffset.Parse(read.Str("readAt")), Is.GreaterThanOrEqualTo(DateTimeOffset.Parse(read.Str("sentAt"))));
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{m.Str("id")}/events"))!.Select(e => e.Str("status")).ToList();
        Assert.That(events.Distinct(), Is.EqualTo(new[] { "queued", "sending", "sent", "delivered", "read" }));

        var sends = _messages.Calls().Where(c => c.Script == "send.applescript").ToList();
        Assert.That(sends, Has.Count.EqualTo(1));
        Assert.That(sends[0].Argv.Select(MessagesEmulator.Utf8), Is.EqualTo(new[] { "iMessage", "+12025550123", "Hi Ana, it's Sam" }));
    }

    /// <summary>
    /// Delivered and read while the agent was down: found together in one pass after the restart. Before, only the read was
    /// applied: deliveredAt was the read time, and no `delivered` event (nor `message.delivered` webhook) was written (probe H).
    /// </summary>
    [Test]
    public async Task DeliveredAndReadWhileTheAgentWasDown_ShouldBeBothApplied_WithChatDbsTimes()
    {
        using var dataDir = new TempDir();
        _messages = new MessagesEmulator(_dir.File("messages"));
        var args = AgentProcess.Args(_messages.Settings());
        string id;
        using (var agent = await AgentProcess.StartAsync(dataDir.Path, args: args))
        using (var api = agent.Api())
        {
            _messages.Control(new { confirmDelayMs = 100, deliverDelayMs = 3_000, readDelayMs = 500 });
            var m = await (await api.SendMessageAsync(new { content = "read while down", type = "imessage", recipientPhone = "+12025550950" }))
                .ExpectAsync(HttpStatusCode.Created);
            Assert.That((m.Str("status"), m.Str("delivery")), Is.EqualTo(("sent", "unknown")));
            id = m.Str("id");
            agent.Kill();
        }
        await Eventually.TrueAsync(() => _messages.Query("SELECT date_read > 0 FROM message WHERE is_from_me = 1") == "1", "read in chat.db");

        using (var agent = await AgentProcess.StartAsync(dataDir.Path, args: args))
        using (var api = agent.Api())
        {
            var read = await Until(api, id, x => x.Str("delivery") == "read", "read");
            var (delivered, readAt) = (DateTimeOffset.Parse(read.Str("deliveredAt")), DateTimeOffset.Parse(read.Str("readAt")));
            Assert.That(readAt - delivered, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(400)), $"delivered at chat.db's date_delivered: {read.ToJsonString()}");
            var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{id}/events"))!.Select(e => e.Str("status")).ToList();
            Assert.That(events.Distinct(), Is.EqualTo(new[] { "queued", "sending", "sent", "delivered", "read" }));
        }
    }

    [Test]
    public async Task IMessageToANumberWithoutIMessage_ShouldFailWith22_AndGoOutAsSms()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { nonImessage = new[] { "+12025550199" }, confirmDelayMs = 200 });

        var answer = await (await api.SendMessageAsync(new { content = "Are you free Friday?", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(answer.Str("type"), Is.EqualTo("sms"), "the answer is the SMS that went out instead");
        Assert.That(answer.Str("status"), Is.EqualTo("sent"));
        var original = await api.GetJsonAsync($"/api/messages/{answer.Str("fallbackFrom")}");
        Assert.That(original.Str("type"), Is.EqualTo("imessage"));
        Assert.That(original.Str("status"), Is.EqualTo("failed"));
        Assert.That(original["error"].Str("code"), Is.EqualTo("imessage_unavailable"));
        Assert.That(original["error"]!["channelCode"]!.GetValue<long>(), Is.EqualTo(22));
        Assert.That(original.Str("fallbackTo"), Is.EqualTo(answer.Str("id")));
        Assert.That(_messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[0])),
            Is.EqualTo(new[] { "iMessage", "SMS" }));

        // Availability learned from it: gray, send as SMS.
        var availability = await api.GetJsonAsync("/api/availability?address=%2B12025550199");
        Assert.That(availability.Str("imessage"), Is.EqualTo("unavailable"));
        Assert.That(availability.Str("sendAs"), Is.EqualTo("sms"));
        Assert.That(availability.Str("source"), Is.EqualTo("history"));

        // And `auto` now picks SMS for that number from the start.
        var auto = await (await api.SendMessageAsync(new { content = "Second try", recipientPhone = "+12025550199" })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(auto.Str("type"), Is.EqualTo("sms"));
        Assert.That(auto.StrOrNull("fallbackFrom"), Is.Null);
    }

    /// <summary>
    /// The failed iMessage went out as SMS: retrying it would send the text a second time (and, over iMessage, fail with 22
    /// and fall back again). Its retry is refused, naming the SMS.
    /// </summary>
    [Test]
    public async Task RetryOfAnIMessageThatFellBackToSms_ShouldBeRefused_NamingTheSms()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { nonImessage = new[] { "+12025550199" }, confirmDelayMs = 100 });
        var sms = await (await api.SendMessageAsync(new { content = "Are you free Friday?", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(sms.Str("type"), Is.EqualTo("sms"));

        var refused = await (await api.PostAsync($"/api/messages/{sms.Str("fallbackFrom")}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(refused.Str("code"), Is.EqualTo("already_retried"));
        Assert.That(refused.Str("retryId"), Is.EqualTo(sms.Str("id")));
        Assert.That(refused.Str("detail"), Does.Contain("sent again as SMS"));
        Assert.That(_messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[0])),
            Is.EqualTo(new[] { "iMessage", "SMS" }));
    }

    /// <summary>
    /// Error 22 can reach chat.db after the agent's confirmation deadline: the send is already `unconfirmed` (maybe sent).
    /// chat.db then proves it was not delivered over iMessage, so it falls back to SMS as an on-time 22 would.
    /// </summary>
    [Test]
    public async Task Error22AfterTheConfirmTimeout_ShouldStillFallBackToSms()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(1));
        using var api = agent.Api();
        // Well after the 1 s deadline, which starts only once the script has exited (a loaded machine takes a while).
        _messages.Control(new { nonImessage = new[] { "+12025550199" }, confirmDelayMs = 6000 });

        var problem = await (await api.SendMessageAsync(new { content = "Are you free Friday?", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));

        var original = await Until(api, problem.Str("messageId"), x => x.StrOrNull("fallbackTo") is not null, "settled by the late error 22");
        Assert.That(original.Str("status"), Is.EqualTo("failed"));
        Assert.That(original["error"].Str("code"), Is.EqualTo("imessage_unavailable"));
        Assert.That(original["error"]!["channelCode"]!.GetValue<long>(), Is.EqualTo(22));
        var sms = await Until(api, original.Str("fallbackTo"), x => x.Str("status") == "sent", "the SMS sent");
        Assert.That(sms.Str("type"), Is.EqualTo("sms"));
        Assert.That(sms.Str("fallbackFrom"), Is.EqualTo(original.Str("id")));
        Assert.That(_messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[0])),
            Is.EqualTo(new[] { "iMessage", "SMS" }));
    }

    /// <summary>
    /// Error 22 on a Mac whose Messages has no SMS account (no Text Message Forwarding): an SMS fallback could only fail
    /// again. The iMessage fails saying why it was not sent as SMS; no second send is tried.
    /// </summary>
    [Test]
    public async Task Error22WithNoSmsAccount_ShouldFailTheIMessage_SayingWhy_WithoutTryingSms()
    {
        // The health as the line last showed it (cached): the decision does not then hang on a check a loaded machine makes slow.
        using var agent = Agent(extra: new Dictionary<string, string?> { ["Bridge:HealthCacheFor"] = "00:05:00" });
        using var api = agent.Api();
        _messages.Control(new { nonImessage = new[] { "+12025550199" }, smsAccount = false, confirmDelayMs = 100 });
        var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(line["messages"].Str("smsAccount"), Is.EqualTo("missing"));

        var problem = await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("imessage_unavailable"), problem.ToJsonString());
        Assert.That(problem["message"]!["error"].Str("message"), Does.Contain("Not sent again as SMS").And.Contain("No SMS account"));
        Assert.That(problem["message"]!.StrOrNull("fallbackTo"), Is.Null);
        Assert.That(_messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[0])),
            Is.EqualTo(new[] { "iMessage" }));
    }

    [Test]
    public async Task IMessageWithout22Fallback_ShouldAnswer500_WhenTheLineDoesNotFallBack()
    {
        using var agent = Agent(extra: new Dictionary<string, string?> { ["Lines:0:Id"] = "mac", ["Lines:0:FallbackToSms"] = "false" });
        using var api = agent.Api();
        _messages.Control(new { nonImessage = new[] { "+12025550199" }, confirmDelayMs = 100 });

        var problem = await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        Assert.That(problem.Str("code"), Is.EqualTo("delivery_failed"));
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("imessage_unavailable"));
        Assert.That(problem["message"]!["error"].Str("message"), Does.Contain("does not fall back"));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));
    }

    [Test]
    public async Task Availability_ShouldBeBlueAfterADelivery_UnknownWhenNothingIsKnown_AndReadMessagesHistory()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 100, deliverDelayMs = 100 });

        var unknown = await api.GetJsonAsync("/api/availability?address=%2B12025550111");
        Assert.That((unknown.Str("imessage"), unknown.Str("source"), unknown.Str("sendAs")), Is.EqualTo(("unknown", "none", "imessage")));
        var email = await api.GetJsonAsync("/api/availability?address=Ana@Example.com");
        Assert.That((email.Str("address"), email.Str("sendAs")), Is.EqualTo(("ana@example.com", "email")));

        var m = await (await api.SendMessageAsync(new { content = "hello", recipientPhone = "+12025550111" })).ExpectAsync(HttpStatusCode.Created);
        await Until(api, m.Str("id"), x => x.Str("delivery") == "delivered", "delivered");
        var blue = await api.GetJsonAsync("/api/availability?address=%2B12025550111");
        Assert.That((blue.Str("imessage"), blue.Str("source")), Is.EqualTo(("available", "history")));

        // Someone who wrote to this Mac over iMessage before the agent existed: chat.db knows.
        _messages.Incoming("+12025550222", "hey", "iMessage");
        var fromDb = await api.GetJsonAsync("/api/availability?address=%2B12025550222");
        Assert.That((fromDb.Str("imessage"), fromDb.Str("source")), Is.EqualTo(("available", "messages-db")));

        var many = await (await api.PostAsJsonAsync("/api/availability", new { addresses = new[] { "+12025550111", "(202) 555-0222", "nope" } }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(many.ProblemFields(), Is.EqualTo(new[] { "addresses[2]" }));
    }

    [Test]
    public async Task StopReply_ShouldBeStoredAsAReply_AndSuppressTheAddress()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 100 });
        var m = await (await api.SendMessageAsync(new { content = "Our offer ends Friday", recipientPhone = "+12025550133" })).ExpectAsync(HttpStatusCode.Created);

        _messages.Incoming("+12025550133", "STOP", "iMessage");
        var suppression = await Eventually.ValueAsync(async () =>
        {
            var r = await api.GetAsync("/api/suppressions/%2B12025550133");
            return r.IsSuccessStatusCode ? await r.JsonAsync() : null;
        }, _ => true, "suppression", TimeSpan.FromSeconds(30));
        Assert.That(suppression.Str("source"), Is.EqualTo("reply"));

        var replies = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{m.Str("id")}/replies"))!;
        Assert.That(replies.Single().Str("content"), Is.EqualTo("STOP"));
        Assert.That(replies.Single().Str("direction"), Is.EqualTo("inbound"));
        var inbound = await api.GetJsonAsync("/api/messages?direction=inbound");
        Assert.That(inbound["items"]!.AsArray().Single()!.Str("replyTo"), Is.EqualTo(m.Str("id")));

        var blocked = await (await api.SendMessageAsync(new { content = "One more thing", recipientPhone = "+12025550133" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(blocked["message"]!["error"].Str("code"), Is.EqualTo("suppressed"));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "nothing was sent to a suppressed address");

        _messages.Incoming("+12025550133", "START", "iMessage");
        await Eventually.TrueAsync(async () => (await api.GetAsync("/api/suppressions/%2B12025550133")).StatusCode == HttpStatusCode.NotFound,
            "opted back in", TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// START lifts what a STOP put on the list, not an operator's do-not-contact added through the API (it did: black-box
    /// probe), also when the operator adds an address a STOP had put there first (it stayed the reply's: review).
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public async Task StartReply_ShouldNotLiftASuppressionAddedThroughTheApi(bool stopFirst)
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 100 });
        await (await api.SendMessageAsync(new { content = "Our offer ends Friday", recipientPhone = "+12025550135" })).ExpectAsync(HttpStatusCode.Created);
        var replies = 0;
        async Task TakenInAsync(string text)
        {
            _messages.Incoming("+12025550135", text, "iMessage");
            replies++;
            await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/messages?direction=inbound"))["items"]!.AsArray().Count == replies, $"the {text} taken in");
        }
        if (stopFirst)
            await TakenInAsync("STOP");
        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550135", reason = "asked the office not to be contacted" }))
            .ExpectAsync(stopFirst ? HttpStatusCode.OK : HttpStatusCode.Created);

        await TakenInAsync("START");

        var suppression = await (await api.GetAsync("/api/suppressions/%2B12025550135")).ExpectAsync(HttpStatusCode.OK);
        Assert.That((suppression.Str("source"), suppression.Str("reason")), Is.EqualTo(("api", "asked the office not to be contacted")), suppression.ToJsonString());
    }

    /// <summary>
    /// A reply answers the last message that reached the person, not the last one handed over: a later send that failed
    /// `recipient_unresolvable` (it never left) took the reply (black-box probe).
    /// </summary>
    [Test]
    public async Task AReply_ShouldGoToTheLastMessageThatReachedThem_NotToALaterOneThatNeverLeft()
    {
        using var agent = Agent();
        using var api = agent.Api();
        const string phone = "+12025550136";
        _messages.Control(new { confirmDelayMs = 100 });
        var good = await (await api.SendMessageAsync(new { content = "good one", type = "imessage", recipientPhone = phone })).ExpectAsync(HttpStatusCode.Created);
        _messages.Control(new { confirmDelayMs = 100, unresolvable = new[] { phone } });
        var bad = await (await api.SendMessageAsync(new { content = "bad one", type = "imessage", recipientPhone = phone })).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(bad["message"]!["error"].Str("code"), Is.EqualTo("recipient_unresolvable"));

        _messages.Incoming(phone, "sure, sounds good");
        var reply = await Eventually.ValueAsync(async () => (await api.GetJsonAsync("/api/messages?direction=inbound"))["items"]!.AsArray().FirstOrDefault()?.AsObject(),
            _ => true, "the reply taken in");
        Assert.That(reply!.Str("replyTo"), Is.EqualTo(good.Str("id")), reply.ToJsonString());
        Assert.That((await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{bad["message"].Str("id")}/replies"))!, Is.Empty);
    }

    [Test]
    public async Task RepliesFromStrangers_ShouldNotBeStored()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 100 });
        var m = await (await api.SendMessageAsync(new { content = "hello", recipientPhone = "+12025550144" })).ExpectAsync(HttpStatusCode.Created);
        _messages.Incoming("+19995550000", "who is this?", "SMS");
        _messages.Incoming("+12025550144", "Thanks, got it", "SMS");

        var reply = await Eventually.ValueAsync(async () =>
            (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{m.Str("id")}/replies"))!.FirstOrDefault(), _ => true, "reply");
        Assert.That((reply.Str("content"), reply.Str("type")), Is.EqualTo(("Thanks, got it", "sms")));
        var inbound = await api.GetJsonAsync("/api/messages?direction=inbound");
        Assert.That(inbound["items"]!.AsArray(), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task HangingMessages_ShouldBeKilledAtTheTimeout_RestartedOnce_AndReported()
    {
        using var agent = Agent(scriptTimeout: TimeSpan.FromSeconds(2));
        using var api = agent.Api();
        _messages.Control(new { hang = "before_send" });

        var problem = await (await api.SendMessageAsync(new { content = "anyone there?", type = "imessage", recipientPhone = "+12025550155" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        var message = problem["message"]!;
        Assert.That(message["error"].Str("code"), Is.EqualTo("messages_timeout"));
        Assert.That(message["error"].Str("message"), Does.Contain("killed").And.Contain("restarted once"));
        var calls = _messages.Calls();
        Assert.That(calls.Select(c => c.Script), Is.EqualTo(new[] { "send.applescript", "restart-messages.applescript", "send.applescript" }),
            "nothing reached `send`, so one retry after reopening Messages is safe");
        foreach (var pid in EmulatorPids())
            Assert.That(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), Is.False, $"pid {pid} still runs");
    }

    [Test]
    public async Task MessagesThatHangsAfterSend_ShouldNotBeRetried_AndIsConfirmedFromChatDb()
    {
        using var agent = Agent(scriptTimeout: TimeSpan.FromSeconds(2));
        using var api = agent.Api();
        _messages.Control(new { hang = "after_send", confirmDelayMs = 100 });

        var m = await (await api.SendMessageAsync(new { content = "sent, then wedged", type = "imessage", recipientPhone = "+12025550166" })).ExpectAsync(HttpStatusCode.Created);

        var sent = await Until(api, m.Str("id"), x => x.Str("status") == "sent", "confirmed");
        Assert.That(sent.Str("channelRef"), Is.Not.Null);
        // chat.db confirmed it while osascript still hung; the runner kills it at the timeout and reopens Messages.
        await Eventually.TrueAsync(() => _messages.Calls().Any(c => c.Script == "restart-messages.applescript"), "Messages reopened");
        await Eventually.TrueAsync(() => agent.Dispatcher.SleepingUntil("default") is not null, "the dispatcher done with that send");
        Assert.That(_messages.Calls().Select(c => c.Script), Is.EqualTo(new[] { "send.applescript", "restart-messages.applescript" }),
            "it reached `send`: a retry could double-send");
    }

    [Test]
    public async Task HangOnceBeforeSend_ShouldRetryAfterRestartingMessages_AndSendOnce()
    {
        using var agent = Agent(scriptTimeout: TimeSpan.FromSeconds(2));
        using var api = agent.Api();
        _messages.Control(new { hang = "before_send", hangCount = 1, confirmDelayMs = 100 });

        var m = await (await api.SendMessageAsync(new { content = "second time lucky", type = "imessage", recipientPhone = "+12025550177" })).ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("status"), Is.EqualTo("sent"));
        Assert.That(_messages.Calls().Select(c => c.Script),
            Is.EqualTo(new[] { "send.applescript", "restart-messages.applescript", "send.applescript" }));
    }

    /// <summary>
    /// The recipient opts out (STOP), or answers a stop-on-reply message, while its script hangs before `send`: Messages is
    /// restarted and the send is not tried again; it fails `suppressed` or is cancelled `replied`, and nothing is sent. Before,
    /// the retry after the restart skipped the checks the dispatcher made before the hand-off, and the message went out to a
    /// number that had just replied STOP (black-box probe).
    /// </summary>
    [TestCase("STOP", false, "failed", "suppressed")]
    [TestCase("no thanks", true, "cancelled", "replied")]
    public async Task AReplyWhileTheScriptHangsBeforeSend_ShouldStopTheRetryAfterTheRestart(string reply, bool stopOnReply, string status, string code)
    {
        using var agent = Agent();
        using var api = agent.Api();
        const string phone = "+12025550181";
        await (await api.SendMessageAsync(new { content = "first", type = "imessage", recipientPhone = phone })).ExpectAsync(HttpStatusCode.Created);
        _messages.Control(new { hang = "before_send", hangCount = 1, confirmDelayMs = 100 });
        var answer = api.SendMessageAsync(new { content = "second", type = "imessage", recipientPhone = phone, stopOnReply });
        await Eventually.TrueAsync(() => _messages.State()["counters"]?["hang"]?.GetValue<long>() == 1, "the second script hangs before send");

        _messages.Incoming(phone, reply);
        await Eventually.TrueAsync(async () => (await api.GetJsonAsync($"/api/messages?direction=inbound"))["items"]!.AsArray().Count == 1, "the reply taken in");
        _messages.Quit(); // the hung Apple event ends with -609; the agent restarts Messages

        await answer;
        var second = (await api.GetJsonAsync("/api/messages?direction=outbound"))["items"]!.AsArray().Single(m => m.Str("content") == "second")!.AsObject();
        var settled = await Until(api, second.Str("id"), x => x.Str("status") is "failed" or "cancelled" or "sent", "settled");
        Assert.That((settled.Str("status"), settled["error"].Str("code")), Is.EqualTo((status, code)), settled.ToJsonString());
        Assert.That(_messages.Calls().Select(c => c.Script), Is.EqualTo(new[] { "send.applescript", "send.applescript", "restart-messages.applescript" }),
            "the second message's script ran once and was not tried again");
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{second.Str("id")}/events"))!;
        Assert.That(events.Any(e => e.Str("detail").Contains("not tried again")), Is.True, string.Join("\n", events.Select(e => e.ToJsonString())));
    }

    [Test]
    public async Task MissingAutomationPermission_ShouldShowInLines_AndFailSendsWithAReason()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { failWith = -1743 });

        var lines = await api.GetFromJsonAsync<List<JsonObject>>("/api/lines");
        var line = lines!.Single();
        Assert.That(line["messages"].Str("automation"), Is.EqualTo("denied"));
        var imessage = line["health"]!.AsArray().Single(h => h.Str("type") == "imessage")!;
        Assert.That(imessage.Str("state"), Is.EqualTo("unavailable"));
        Assert.That(imessage.Str("detail"), Does.Contain("Automation"));
        var status = await api.GetJsonAsync("/api/status");
        Assert.That(status["lines"]![0]!["messages"].Str("automation"), Is.EqualTo("denied"));

        var problem = await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550188" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("automation_denied"));
    }

    [TestCase(-1719, "account", "imessage_account_missing")]
    [TestCase(-1728, "participant", "recipient_unresolvable")]
    [TestCase(-1700, "account", "invalid_service")]
    [TestCase(-1743, "participant", "automation_denied")]
    [TestCase(-600, "account", "messages_not_running")]
    public async Task RefusedSends_ShouldFailWithANamedReason(int code, string step, string expected)
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { failWith = code, failStep = step });
        var problem = await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550188" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo(expected));
        Assert.That(problem["message"]!["error"].Str("message"), Does.Contain($"({code})"));
        Assert.That(problem["message"]!["error"]!["channelCode"]!.GetValue<long>(), Is.EqualTo(code), "Apple's raw number is kept");
    }

    [Test]
    public async Task NoSmsAccount_ShouldShowInLines_AndFailSmsWithSmsUnavailable()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { smsAccount = false });

        var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(line["messages"].Str("smsAccount"), Is.EqualTo("missing"));
        Assert.That(line["messages"].Str("iMessageAccount"), Is.EqualTo("signed_in"));
        var problem = await (await api.SendMessageAsync(new { content = "hi", type = "sms", recipientPhone = "+12025550188" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("sms_unavailable"));
        Assert.That(problem["message"]!["error"]!["channelCode"]!.GetValue<long>(), Is.EqualTo(-1719),
            "SMS is a dictionary term since Big Sur: no SMS account is -1719 Invalid index, not -2753");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "not retried");
    }

    /// <summary>
    /// The same text to the same person again while the first send still waits for a row that never came: the row the
    /// second script wrote is the second message's (the first ends unconfirmed), not the first's (which left the second
    /// unconfirmed, inviting a forced resend of a message that went out).
    /// </summary>
    /// <remarks>
    /// With <paramref name="returnDelayMs"/>, the second script answers 3 s after its row is in chat.db (a loaded machine):
    /// the watcher saw the row before the second send's baseline was written and gave it to the first (a CI failure).
    /// </remarks>
    [TestCase(0)]
    [TestCase(3000)]
    public async Task ARowWrittenByALaterSendOfTheSameText_ShouldGoToThatSend_NotToAnEarlierOneStillWaiting(int returnDelayMs)
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(8));
        using var api = agent.Api();
        _messages.Control(new { recordOnly = true });
        var first = api.SendMessageAsync(new { content = "same text", type = "imessage", recipientPhone = "+12025550902" });
        await Eventually.TrueAsync(() => _messages.Calls().Count(c => c.Script == "send.applescript") == 1, "the first script ran (no row)");
        _messages.Control(new { returnDelayMs });

        var second = await (await api.SendMessageAsync(new { content = "same text", type = "imessage", recipientPhone = "+12025550902" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(second.Str("status"), Is.EqualTo("sent"), second.ToJsonString());
        var firstProblem = await (await first).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(firstProblem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"), firstProblem.ToJsonString());
        Assert.That(firstProblem["message"]!["channelRef"], Is.Null, "the row is not the first send's");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(2), "each sent once");
    }

    /// <summary>
    /// A send whose row is already in chat.db is not held up by the next send to the same person while that one's script
    /// is still running: each script here answers 10 s after its row, so the first send's outcome and the second's
    /// hand-off commit together, and the first's confirmation deadline (8 s after it) falls before the second answers.
    /// A first fix of the race above held the first send until then, and it failed unconfirmed (review).
    /// </summary>
    [Test]
    public async Task ASendWhoseRowIsThere_ShouldBeConfirmed_WhileTheNextSendToThePersonIsStillRunning()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(8));
        using var api = agent.Api();
        _messages.Control(new { returnDelayMs = 10_000, confirmDelayMs = 300 });
        var first = api.SendMessageAsync(new { content = "first text", type = "imessage", recipientPhone = "+12025550903" });
        var second = api.SendMessageAsync(new { content = "second text", type = "imessage", recipientPhone = "+12025550903" });
        var ids = new List<string>();
        foreach (var answer in new[] { await first, await second })
        {
            var body = JsonNode.Parse(await answer.Content.ReadAsStringAsync())!.AsObject();
            ids.Add(body.StrOrNull("id") ?? body.Str("messageId"));
        }
        foreach (var id in ids)
        {
            var settled = await Until(api, id, x => x.Str("status") is "sent" or "failed", $"{id} settled");
            Assert.That((settled.Str("status"), settled.StrOrNull("channelRef") is not null), Is.EqualTo(("sent", true)), settled.ToJsonString());
        }
    }

    /// <summary>
    /// Two lines send to the same person at once: line 2's send is handed off while line 1's script has not written its row
    /// yet (line 2 then waits at the Messages gate), and each script answers 5 s after its row. Line 1's row is dated after
    /// line 2's hand-off, so the rule of 216d228 (rows dated from an unfinished send's hand-off wait for its outcome) held it
    /// until line 2's script answered, after line 1's confirmation deadline: line 1 failed `unconfirmed` (a false "maybe
    /// sent"; the same with line 2's script hung for minutes). A row is now held only above the chat.db baseline of a send
    /// whose script has started (MessagesSendsInFlight), and line 2's baseline is above line 1's row.
    /// </summary>
    [Test]
    public async Task ARowOfOneLine_ShouldNotWaitForAnotherLinesScriptToThePerson()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(4), extra: new Dictionary<string, string?>
        {
            ["Lines:1:Id"] = "second", ["Lines:1:Pacing:Enabled"] = "false",
        });
        using var api = agent.Api();
        _messages.Control(new { sendDelayMs = 2000, returnDelayMs = 5000, confirmDelayMs = 200 });
        var first = api.SendMessageAsync(new { content = "from line one", type = "imessage", recipientPhone = "+12025550904", lineId = "default" });
        await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/messages?status=sending"))["items"]!.AsArray().Count == 1,
            "line one's send handed off");
        var second = api.SendMessageAsync(new { content = "from line two", type = "imessage", recipientPhone = "+12025550904", lineId = "second" });
        await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/messages?status=sending"))["items"]!.AsArray().Count == 2,
            "line two's send handed off while line one's script runs");
        Assert.That(_messages.CallRecords().Count(c => c["script"]!.GetValue<string>() == "send.applescript"), Is.LessThanOrEqualTo(1),
            "line two's script waits for line one's");

        foreach (var (answer, line) in new[] { (await first, "one"), (await second, "two") })
        {
            var body = JsonNode.Parse(await answer.Content.ReadAsStringAsync())!.AsObject();
            Assert.That((int)answer.StatusCode, Is.EqualTo(201), $"line {line}: {body.ToJsonString()}");
            Assert.That((body.Str("status"), body.StrOrNull("channelRef") is not null), Is.EqualTo(("sent", true)), body.ToJsonString());
        }
    }

    /// <summary>
    /// `auto` does not pick a type that the line's health says cannot go out: with iMessage signed out, a phone gets SMS
    /// (the line has an SMS account), and the one script run is an SMS send. Before, auto took iMessage and the send
    /// failed `imessage_account_missing`.
    /// </summary>
    [Test]
    public async Task Auto_ShouldSendSms_WhenTheLineSaysIMessageIsSignedOut()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { imessageSignedIn = false, confirmDelayMs = 200 });

        var m = await (await api.SendMessageAsync(new { content = "Running late", recipientPhone = "+12025550142" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("requestedType"), Is.EqualTo("auto"));
        Assert.That(m.Str("type"), Is.EqualTo("sms"));
        Assert.That(m.Str("status"), Is.EqualTo("sent"));
        var sends = _messages.Calls().Where(c => c.Script == "send.applescript").ToList();
        Assert.That(sends.Select(c => MessagesEmulator.Utf8(c.Argv[0])), Is.EqualTo(new[] { "SMS" }), "no iMessage attempt");
    }

    /// <summary>
    /// An iMessage account still `connecting` (seconds after Messages starts, a wake, a network change) passes by itself:
    /// the line shows it, and `auto` still picks iMessage rather than sending SMS for those seconds.
    /// </summary>
    [Test]
    public async Task Auto_ShouldKeepIMessage_WhileTheAccountIsConnecting()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { imessageConnection = "connecting", confirmDelayMs = 100 });

        var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(line["messages"].Str("iMessageAccount"), Is.EqualTo("connecting"));
        var m = await (await api.SendMessageAsync(new { content = "Running late", recipientPhone = "+12025550146" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That((m.Str("type"), m.Str("status")), Is.EqualTo(("imessage", "sent")));
    }

    /// <summary>A bulk with `auto` decides the same way for each lead: iMessage signed out, so every lead with a phone gets SMS.</summary>
    [Test]
    public async Task BulkAuto_ShouldSendSms_WhenTheLineSaysIMessageIsSignedOut()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { imessageSignedIn = false, confirmDelayMs = 100 });
        var leadIds = new List<string>();
        foreach (var (name, phone) in new[] { ("Ana", "+12025550151"), ("Ben", "+12025550152") })
            leadIds.Add((await (await api.PostAsJsonAsync("/api/leads", new { firstName = name, phone })).ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new { leadIds, content = "Hi {{firstName}}" }))
            .ExpectAsync(HttpStatusCode.Accepted);

        var entries = bulk["messages"]!.AsArray().Select(e => e!.AsObject()).ToList();
        Assert.That(entries.Select(e => e.Str("type")), Is.EqualTo(new[] { "sms", "sms" }));
        foreach (var e in entries)
            await Until(api, e.Str("messageId"), x => x.Str("status") == "sent", "sent");
        Assert.That(_messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[0])),
            Is.EqualTo(new[] { "SMS", "SMS" }));
    }

    /// <summary>
    /// A bulk with `auto` reads Messages' chat.db as a single send does, and the newer evidence wins (probe H: bulk read only
    /// this agent's history and cached answers): a number whose chat.db history is an RCS conversation gets SMS (it went as
    /// iMessage, failed 22 and went again as SMS); an email lead with iMessage history gets iMessage (it was refused: no email
    /// channel); a number we delivered an iMessage to, then seen in a newer RCS conversation, gets SMS, as the preview says.
    /// </summary>
    [Test]
    public async Task BulkAuto_ShouldDecideFromChatDb_AndTheNewerEvidence_AsASingleSendDoes()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 100, deliverDelayMs = 100 });
        // Our own history: an iMessage to Cy delivered; then Cy's newer conversation over RCS.
        var delivered = await (await api.SendMessageAsync(new { content = "hello Cy", type = "imessage", recipientPhone = "+12025550803" }))
            .ExpectAsync(HttpStatusCode.Created);
        await Until(api, delivered.Str("id"), x => x.Str("delivery") == "delivered", "delivered");
        _messages.Incoming("+12025550801", "hi from an Android phone", service: "RCS");
        _messages.Incoming("carol@example.com", "hi from my Mac", service: "iMessage");
        _messages.Incoming("+12025550803", "new phone, who dis", service: "RCS", date: DateTimeOffset.UtcNow.AddSeconds(5));
        var leadIds = new List<string>();
        foreach (var lead in new object[] { new { firstName = "Ana", phone = "+12025550801" }, new { firstName = "Carol", email = "carol@example.com" },
                     new { firstName = "Cy", phone = "+12025550803" } })
            leadIds.Add((await (await api.PostAsJsonAsync("/api/leads", lead)).ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var preview = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", new { leadIds, content = "Hi {{firstName}}" }))
            .ExpectAsync(HttpStatusCode.OK);
        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new { leadIds, content = "Hi {{firstName}}", scheduledAt = "2030-01-01T00:00:00Z" }))
            .ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(bulk["rejected"]!.GetValue<int>(), Is.Zero, bulk.ToJsonString());
        Assert.That(bulk["messages"]!.AsArray().Select(e => e!.Str("type")), Is.EqualTo(new[] { "sms", "imessage", "sms" }), bulk.ToJsonString());
        Assert.That(preview["messages"]!.AsArray().Select(e => e!.Str("type")), Is.EqualTo(new[] { "sms", "imessage", "sms" }), preview.ToJsonString());
        var single = await api.GetJsonAsync("/api/availability?address=%2B12025550803");
        Assert.That(single.Str("imessage"), Is.EqualTo("unavailable"), "the single answer agrees");
    }

    /// <summary>
    /// `auto` asks the line's health, but a hung Messages holds status.applescript for up to Bridge:ScriptTimeout: the
    /// request waits at most MessagesChannel.HealthWaitForRouting (2 s) and then routes on what is known (nothing: iMessage).
    /// </summary>
    [Test]
    public async Task Auto_ShouldNotWaitForAHungHealthCheck()
    {
        using var agent = Agent(scriptTimeout: TimeSpan.FromSeconds(60));
        using var api = agent.Api();
        // Hung until the agent kills it (the script's own 20 s `with timeout` would end it sooner: the window below).
        _messages.Control(new { hang = "status", hangMaxMs = 120_000, confirmDelayMs = 100 });

        var m = await (await api.SendMessageAsync(new { content = "Running late", recipientPhone = "+12025550144" }))
            .ExpectAsync(HttpStatusCode.Created);

        // Answered while status.applescript still hangs (it is killed only at MessagesScripts.StatusHardTimeout, 30 s); one wait
        // for both Messages types, which ChannelRouterTests shows are asked together.
        var status = _messages.CallRecords().Single(r => r["script"]!.GetValue<string>() == "status.applescript");
        var pid = status["pid"]!.GetValue<int>();
        Assert.That(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), Is.True,
            "the send was answered while the health check still hung");
        Assert.That((m.Str("type"), m.Str("status")), Is.EqualTo(("imessage", "sent")));
    }

    /// <summary>
    /// /api/status and /api/lines (the menu bar asks with a 5 s limit) while Messages hangs: they answered only when the
    /// status script was killed, 20-30 s later, and the menu bar said "Agent not running" (black-box probe). They answer
    /// within the routing wait, saying Messages does not answer, and once the check ends they show its answer.
    /// </summary>
    [Test]
    public async Task StatusAndLines_ShouldAnswerWhileTheHealthCheckHangs_SayingSo()
    {
        using var agent = Agent(scriptTimeout: TimeSpan.FromSeconds(60), extra: new Dictionary<string, string?> { ["Bridge:HealthWaitForViews"] = "00:00:02" });
        using var api = agent.Api();
        _messages.Control(new { hang = "status", hangMaxMs = 120_000 });

        foreach (var path in new[] { "/api/status", "/api/lines", "/api/status" })
        {
            var body = await api.GetStringAsync(path);
            var line = path == "/api/lines" ? JsonNode.Parse(body)![0]! : JsonNode.Parse(body)!["lines"]![0]!;
            Assert.That(line["messages"].Str("messages"), Is.EqualTo("timed_out"), body);
            Assert.That(line["health"]!.AsArray().Single(h => h.Str("type") == "imessage")!.Str("detail"), Does.Contain("Messages did not answer"), body);
        }
        var status = _messages.CallRecords().Single(r => r["script"]!.GetValue<string>() == "status.applescript");
        var pid = status["pid"]!.GetValue<int>();
        Assert.That(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), Is.True,
            "all three answered while the one health check still hung (it is killed at 30 s)");
    }

    /// <summary>
    /// A check that is slow for a moment (a cold osascript after a wake), with an answer from before: the view shows that
    /// answer, not "Messages did not answer", until the check has run <see cref="LineAgent.Channels.Messages.MessagesHealth.SlowAfter"/> (review).
    /// </summary>
    [Test]
    public async Task Lines_ShouldShowTheLastAnswer_WhileANewCheckIsOnlySlow()
    {
        using var agent = Agent(extra: new Dictionary<string, string?> { ["Bridge:HealthCacheFor"] = "00:00:01", ["Bridge:HealthWaitForViews"] = "00:00:01" });
        using var api = agent.Api();
        var first = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(first["messages"].Str("messages"), Is.EqualTo("reachable"));
        var answeredAt = DateTimeOffset.Parse(first["messages"].Str("checkedAt"));
        _messages.Control(new { hang = "status", hangMaxMs = 8000 });
        await Eventually.TrueAsync(() => DateTimeOffset.UtcNow > answeredAt.AddSeconds(1.5), "the cached answer is stale");

        var slow = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        Assert.That(slow["messages"].Str("messages"), Is.EqualTo("reachable"), slow.ToJsonString());
        Assert.That(DateTimeOffset.Parse(slow["messages"].Str("checkedAt")), Is.EqualTo(answeredAt), "the answer from before, with its time");
    }

    /// <summary>With neither account, auto keeps its first choice, and the send fails with that choice's own reason.</summary>
    [Test]
    public async Task Auto_ShouldKeepIMessage_AndFailWithItsReason_WhenNoTypeIsUsable()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { imessageSignedIn = false, smsAccount = false });

        var problem = await (await api.SendMessageAsync(new { content = "Running late", recipientPhone = "+12025550143" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        Assert.That(problem["message"].Str("type"), Is.EqualTo("imessage"));
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("imessage_account_missing"));
    }

    /// <summary>
    /// Without chat.db (Messages never set up, or no Full Disk Access: the reader tells the two apart) a send could never
    /// be confirmed: it would go out and end `unconfirmed`, maybe sent and not to be retried. So the script is not run;
    /// the failure names the fix, and a retry needs no force.
    /// </summary>
    [TestCase("missing")]
    [TestCase("denied")]
    public async Task ASendWhileChatDbCannotBeRead_ShouldFailBeforeTheScript_AsNotSent(string how)
    {
        using var agent = Agent();
        using var api = agent.Api();
        foreach (var f in new[] { "", "-wal", "-shm" })
            File.Delete(_messages.ChatDb + f);
        if (how == "denied")
            Directory.CreateDirectory(_messages.ChatDb); // listed but not openable: what a refused read looks like (ChatDbReaderTests)

        var problem = await (await api.SendMessageAsync(new { content = "hello", type = "imessage", recipientPhone = "+12025550198" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);

        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("chatdb_unavailable"));
        Assert.That(error.Str("message"), Does.Contain("nothing was sent")
            .And.Contain(how == "denied" ? "Full Disk Access" : "does not exist"));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.Zero, "the script never ran");
        var retry = await api.PostAsync($"/api/messages/{problem.Str("messageId")}/retry", null);
        Assert.That(await retry.Content.ReadAsStringAsync(), Does.Not.Contain("maybe_sent"), "nothing was sent: a retry needs no force");

        // auto does not pick a type that Messages could not confirm: with no other channel it keeps iMessage (and fails the same way).
        var auto = await (await api.SendMessageAsync(new { content = "hello", recipientPhone = "+12025550197" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(auto["message"]!["error"].Str("code"), Is.EqualTo("chatdb_unavailable"));
    }

    /// <summary>
    /// Messages failing in a way that opens its circuit (Automation denied) holds the line's Messages sends, not its email:
    /// the held iMessages wait as `queued` with `notBefore`, while the emails due at the same time go out.
    /// </summary>
    [Test]
    public async Task AnOpenMessagesCircuit_ShouldHoldOnlyMessagesSends_NotTheLinesEmail()
    {
        using var smtp = new SmtpStandIn(_dir.File("mail"));
        var extra = smtp.Settings();
        extra["Resilience:MaxRetries"] = "0";
        extra["Resilience:MinimumThroughput"] = "2";
        extra["Resilience:FailureRatio"] = "0.5";
        extra["Resilience:BreakDuration"] = "00:10:00";
        using var agent = Agent(extra: extra);
        using var api = agent.Api();
        _messages.Control(new { failWith = -1743 });

        var at = DateTimeOffset.UtcNow.AddSeconds(2).ToString("O");
        var imessages = new List<string>();
        for (var i = 0; i < 4; i++)
            imessages.Add((await (await api.SendMessageAsync(new { content = $"imsg {i}", type = "imessage", recipientPhone = $"+1202555017{i}", scheduledAt = at }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));
        var emails = new List<string>();
        for (var i = 0; i < 2; i++)
            emails.Add((await (await api.SendMessageAsync(new { content = $"mail {i}", type = "email", recipientEmail = $"b{i}@example.com", scheduledAt = at }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        foreach (var id in emails)
            await Until(api, id, x => x.Str("status") == "sent", "the email sent while Messages' circuit is open");
        var states = new List<JsonObject>();
        foreach (var id in imessages)
            states.Add(await Until(api, id, x => x.Str("status") is "failed" or "queued" && (x.Str("status") == "failed" || x["notBefore"] is not null), "settled or held"));
        Assert.That(states.Count(x => x.Str("status") == "queued"), Is.GreaterThan(0), "the circuit opened and held the rest");
        Assert.That(states.Where(x => x.Str("status") == "failed").Select(x => x["error"].Str("code")), Is.All.EqualTo("automation_denied"));
    }

    /// <summary>
    /// chatdb_unavailable is not counted towards the circuit: `auto` already steers away from it, and an open circuit would
    /// only delay the same answer. Each due Messages send fails with it, saying what to fix.
    /// </summary>
    [Test]
    public async Task ScheduledSendsWhileChatDbIsDenied_ShouldEachFailWithTheReason_NotWaitOnACircuit()
    {
        using var agent = Agent(extra: new Dictionary<string, string?>
        {
            ["Resilience:MaxRetries"] = "0", ["Resilience:MinimumThroughput"] = "2", ["Resilience:FailureRatio"] = "0.5",
            ["Resilience:BreakDuration"] = "00:10:00",
        });
        using var api = agent.Api();
        foreach (var f in new[] { "", "-wal", "-shm" })
            File.Delete(_messages.ChatDb + f);
        Directory.CreateDirectory(_messages.ChatDb);
        var at = DateTimeOffset.UtcNow.AddSeconds(2).ToString("O");
        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
            ids.Add((await (await api.SendMessageAsync(new { content = $"imsg {i}", type = "imessage", recipientPhone = $"+1202555018{i}", scheduledAt = at }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        foreach (var id in ids)
        {
            var m = await Until(api, id, x => x.Str("status") == "failed", "failed");
            Assert.That(m["error"].Str("code"), Is.EqualTo("chatdb_unavailable"));
        }
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.Zero);
    }

    /// <summary>A chat.db that is not a database: the script never ran, so the failure says nothing was sent and a retry is allowed.</summary>
    [Test]
    public async Task AChatDbThatIsNotADatabase_ShouldFailBeforeTheScript_AsNotSent()
    {
        using var agent = Agent();
        using var api = agent.Api();
        File.WriteAllText(_messages.ChatDb, "garbage, not SQLite\n");
        var problem = await (await api.SendMessageAsync(new { content = "hello", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("messages_error"));
        Assert.That(error.Str("message"), Does.Contain("chat.db could not be read before the send").And.Contain("nothing was sent"));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.Zero, "the script never ran");
        var retry = await api.PostAsync($"/api/messages/{problem.Str("messageId")}/retry", null);
        Assert.That((int)retry.StatusCode, Is.EqualTo(201).Or.EqualTo(202).Or.EqualTo(500), await retry.Content.ReadAsStringAsync());
        Assert.That(await retry.Content.ReadAsStringAsync(), Does.Not.Contain("maybe_sent"), "nothing was sent: a retry needs no force");
    }

    /// <summary>
    /// A chat.db that is not a database is chat.db's problem, said as such: availability answers without it, the line says
    /// `damaged_db`, and `auto` does not pick Messages. Before, the open read nothing (the pragma's row ended ExecuteScalar),
    /// the first real read threw SQLite's error 26 into the API's handler for the agent's own database, and every `auto`
    /// send and availability lookup was answered 503 "The agent's database is damaged ... run `lineagent restore`" (probe H).
    /// </summary>
    [Test]
    public async Task AChatDbThatIsNotADatabase_ShouldBeSaidToBeChatDbs_NotTheAgentsDatabase()
    {
        using var agent = Agent();
        using var api = agent.Api();
        File.Delete(_messages.ChatDb + "-wal");
        File.Delete(_messages.ChatDb + "-shm");
        File.WriteAllBytes(_messages.ChatDb, Enumerable.Range(0, 8192).Select(i => (byte)(i * 37 % 251)).ToArray());

        var availability = await api.GetAsync("/api/availability?address=%2B12025550183");
        var body = await availability.Content.ReadAsStringAsync();
        Assert.That(availability.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        Assert.That(body, Does.Not.Contain("storage_error").And.Not.Contain("lineagent restore"));

        var line = await Eventually.ValueAsync(async () => (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single(),
            l => l["messages"]?.StrOrNull("fullDiskAccess") == "damaged_db", "the line says chat.db is damaged");
        Assert.That(line["health"]!.AsArray().Select(h => h.StrOrNull("detail")), Has.Some.Contains("the agent's own database is not affected"));

        var auto = await api.SendMessageAsync(new { content = "hello", type = "auto", recipientPhone = "+12025550182" });
        var answer = await auto.Content.ReadAsStringAsync();
        Assert.That(answer, Does.Not.Contain("storage_error").And.Not.Contain("lineagent restore"), answer);
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.Zero, "nothing was handed to Messages");
    }

    [Test]
    public async Task GhostRow_ShouldFail()
    {
        using var agent = Agent();
        using var api = agent.Api();
        _messages.Control(new { ghost = true });
        var problem = await (await api.SendMessageAsync(new { content = "into the void", type = "sms", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("ghost_row"));
    }

    /// <summary>
    /// A script that fails after it reached `send` (-609: Messages quit) may have sent: it waits for chat.db like an accepted
    /// send, but its event says what happened, with the error, not "accepted by messages".
    /// </summary>
    [Test]
    public async Task AScriptThatFailsAfterSend_ShouldSaySoInItsEvent_AndFailUnconfirmedWithoutResending()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(2));
        using var api = agent.Api();
        _messages.Control(new { failWith = -609, failStep = "send", failCount = 1 });

        var problem = await (await api.SendMessageAsync(new { content = "maybe", type = "imessage", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        Assert.That(problem["message"]!["error"].Str("message"), Does.StartWith("The send was handed to Messages but no matching row appeared"));
        var details = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{problem.Str("messageId")}/events"))!
            .Select(e => e["detail"]?.GetValue<string>() ?? "").ToList();
        Assert.That(details, Has.Some.StartWith("the script failed after it reached send (").And.Contains("-609"), string.Join("\n", details));
        Assert.That(details, Has.None.Contains("accepted by messages"), string.Join("\n", details));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "not resent");
    }

    [Test]
    public async Task NoConfirmationWithinTheTimeout_ShouldFailAsUnconfirmed_WithoutResending()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(2));
        using var api = agent.Api();
        _messages.Control(new { recordOnly = true });

        var problem = await (await api.SendMessageAsync(new { content = "lost?", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));

        var retry = await (await api.PostAsync($"/api/messages/{problem.Str("messageId")}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(retry.Str("code"), Is.EqualTo("maybe_sent"), "a retry could double-send; it needs ?force=true");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));
    }

    /// <summary>
    /// A first step that fails `unconfirmed` stops its follow-ups; when chat.db confirms it after all (or error 22 comes
    /// late and its SMS fallback goes), the follow-up waits for it again and is due `after` its actual send. Before, the
    /// sequence stayed stopped (`stoppedBy` `sequence_stopped`) though no step had failed (black-box probe).
    /// </summary>
    [TestCase(false, "imessage")]
    [TestCase(true, "sms")]
    public async Task AStepConfirmedLate_ShouldResumeItsFollowUps(bool noIMessage, string followUpType)
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(1));
        using var api = agent.Api();
        await using var hooks = await LineAgent.Tests.Webhooks.WebhookReceiver.StartAsync();
        hooks.Secret = (await (await api.PostAsJsonAsync("/api/webhooks", new { url = hooks.Url, events = new[] { "message.cancelled", "message.resumed", "message.failed", "message.sent" } }))
            .ExpectAsync(HttpStatusCode.Created)).Str("secret");
        const string phone = "+12025550188";
        _messages.Control(noIMessage ? new { nonImessage = new[] { phone }, confirmDelayMs = 6000 } : (object)new { confirmDelayMs = 6000 });

        var problem = await (await api.SendMessageAsync(new { content = "step zero", recipientPhone = phone, followUps = new[] { new { after = "PT1H", content = "step one" } } }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        var sequence = problem["message"].Str("sequenceId");
        var stopped = await api.GetJsonAsync($"/api/sequences/{sequence}");
        Assert.That((stopped.Str("status"), stopped["steps"]![1]!["error"].Str("code")), Is.EqualTo(("stopped", "sequence_stopped")), stopped.ToJsonString());

        var resumed = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/sequences/{sequence}")!,
            s => s["steps"]!.AsArray().Any(x => x.Str("content") == "step one" && x.Str("status") == "scheduled"), "the follow-up waits again", TimeSpan.FromSeconds(30));
        var sent = resumed["steps"]!.AsArray().Single(x => x.Str("status") == "sent")!;
        var followUp = resumed["steps"]!.AsArray().Single(x => x.Str("content") == "step one")!;
        Assert.That((resumed.Str("status"), resumed["stoppedBy"]), Is.EqualTo(("active", (JsonNode?)null)), resumed.ToJsonString());
        Assert.That(sent.Str("type"), Is.EqualTo(noIMessage ? "sms" : "imessage"));
        Assert.That(DateTimeOffset.Parse(followUp.Str("scheduledAt")), Is.EqualTo(DateTimeOffset.Parse(sent.Str("sentAt")) + TimeSpan.FromHours(1)));
        Assert.That(followUp.Str("type"), Is.EqualTo(followUpType), "after error 22 the follow-up goes as SMS too");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(noIMessage ? 2 : 1));
        // A receiver that was told the follow-up was cancelled is told it is pending again.
        await Eventually.TrueAsync(() => hooks.Accepted.Any(h => h.Type == "message.resumed"), "a message.resumed webhook");
        Assert.That(hooks.Accepted.Where(h => h.MessageId == followUp.Str("id")).Select(h => h.Type), Is.EqualTo(new[] { "message.cancelled", "message.resumed" }));
        if (!noIMessage)
        {
            // The row matched to the unconfirmed step is a note: one message.failed (unconfirmed), then message.sent, not a
            // second message.failed under another id (black-box probe).
            await Eventually.TrueAsync(() => hooks.Accepted.Any(h => h.MessageId == sent.Str("id") && h.Type == "message.sent"), "message.sent of step zero");
            Assert.That(hooks.Accepted.Where(h => h.MessageId == sent.Str("id")).Select(h => h.Type), Is.EqualTo(new[] { "message.failed", "message.sent" }));
        }
        Assert.That(hooks.Accepted.Select(h => h.SignatureValid), Is.All.True);
    }

    /// <summary>
    /// A message typed by hand in Messages (or synced from the iPhone) to the same person after a send ended `unconfirmed`
    /// is not that send's row. Before, a send whose script ran took any later row to that person: the send turned `sent`
    /// and `delivered` though it never went out, and its stopped follow-up was resumed and sent (black-box probe).
    /// </summary>
    [Test]
    public async Task ARowOfAnotherTextAfterAnUnconfirmedSend_ShouldNotConfirmIt_NorResumeItsFollowUps()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(2));
        using var api = agent.Api();
        await using var hooks = await LineAgent.Tests.Webhooks.WebhookReceiver.StartAsync();
        hooks.Secret = (await (await api.PostAsJsonAsync("/api/webhooks", new { url = hooks.Url, events = new[] { "message.failed", "message.sent" } }))
            .ExpectAsync(HttpStatusCode.Created)).Str("secret");
        const string phone = "+12025550132";
        _messages.Control(new { failWith = -609, failStep = "send", failCount = 1 });
        var problem = await (await api.SendMessageAsync(new
        {
            content = "X text never sent", type = "imessage", recipientPhone = phone, followUps = new[] { new { after = "PT1S", content = "Follow-up one" } },
        })).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        var id = problem.Str("messageId");
        _messages.Control(new { });

        // The person's own Messages (a text typed by hand), then a link's preview row of the agent's next send.
        var typing = _dir.File("typing");
        Directory.CreateDirectory(typing);
        File.WriteAllText(Path.Combine(typing, "send.applescript"), "-- placeholder for send.applescript\n");
        var typed = await _messages.ExecAsync(Path.Combine(typing, "send.applescript"), "iMessage", phone, "Hey, it's Sam typing by hand");
        Assert.That(typed.ExitCode, Is.Zero, typed.Stderr);
        _messages.Control(new { urlPreview = true });
        var link = await (await api.SendMessageAsync(new { content = "Here is the deck https://example.com/deck", type = "imessage", recipientPhone = phone }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(link.Str("status"), Is.EqualTo("sent"));
        // One more confirmed send: the watcher's pass that matched the link (and then looked at the unconfirmed one) is over.
        await (await api.SendMessageAsync(new { content = "one more", type = "imessage", recipientPhone = phone })).ExpectAsync(HttpStatusCode.Created);

        var unconfirmed = await api.GetJsonAsync($"/api/messages/{id}");
        Assert.That((unconfirmed.Str("status"), unconfirmed["error"].Str("code"), unconfirmed.StrOrNull("channelRef")), Is.EqualTo(("failed", "unconfirmed", (string?)null)),
            unconfirmed.ToJsonString());
        var steps = (await api.GetJsonAsync($"/api/sequences/{unconfirmed.Str("sequenceId")}"))["steps"]!.AsArray();
        Assert.That(steps[1].Str("status"), Is.EqualTo("cancelled"), "the follow-up of a message that never went out stays stopped");

        // Its own text does show up after all (Messages wrote it late): matched, then sent; the match is a note, not a second
        // message.failed under another id (black-box probe).
        _messages.Control(new { });
        var late = await _messages.ExecAsync(Path.Combine(typing, "send.applescript"), "iMessage", phone, "X text never sent");
        Assert.That(late.ExitCode, Is.Zero, late.Stderr);
        await Until(api, id, x => x.Str("status") == "sent", "the late row confirms it");
        await Eventually.TrueAsync(() => hooks.Accepted.Any(h => h.MessageId == id && h.Type == "message.sent"), "its message.sent");
        Assert.That(hooks.Accepted.Where(h => h.MessageId == id).Select(h => h.Type), Is.EqualTo(new[] { "message.failed", "message.sent" }));
    }

    /// <summary>
    /// A sequence cancelled through the API while its first step's `unconfirmed` held the rest stopped stays cancelled when
    /// chat.db confirms that step late (review: the cancel found nothing pending, and the resume sent the follow-up).
    /// </summary>
    [Test]
    public async Task ASequenceCancelledWhileStopped_ShouldNotResumeWhenItsStepIsConfirmedLate()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(1));
        using var api = agent.Api();
        _messages.Control(new { confirmDelayMs = 6000 });
        var problem = await (await api.SendMessageAsync(new { content = "step zero", recipientPhone = "+12025550189", followUps = new[] { new { after = "PT1H", content = "step one" } } }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        var sequence = problem["message"].Str("sequenceId");
        await (await api.PostAsync($"/api/sequences/{sequence}/cancel", null)).ExpectAsync(HttpStatusCode.OK);

        await Until(api, problem["message"].Str("id"), x => x.Str("status") == "sent", "step zero confirmed late");
        // The late confirmation's unit of work (the resume included) is committed with the status: nothing is still to come.
        var steps = (await api.GetJsonAsync($"/api/sequences/{sequence}"))["steps"]!.AsArray();
        var followUp = steps.Single(x => x.Str("content") == "step one")!;
        Assert.That(followUp.Str("status"), Is.EqualTo("cancelled"), steps.ToJsonString());
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{followUp.Str("id")}/events"))!;
        Assert.That(events.Select(e => e.StrOrNull("code")), Has.No.Member("resumed"));
    }

    /// <summary>
    /// A reply while a stop-on-reply iMessage was in flight (it failed `unconfirmed`: nothing pending to cancel), then a late
    /// error 22: the SMS fallback counts the reply from the iMessage's creation and is cancelled `replied`, not sent (review:
    /// it counted from its own creation, after the reply).
    /// </summary>
    [Test]
    public async Task AFallbackAfterAReplyToItsIMessage_ShouldBeCancelled_NotSent()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(1));
        using var api = agent.Api();
        const string phone = "+12025550187";
        _messages.Control(new { nonImessage = new[] { phone }, confirmDelayMs = 6000 });
        var problem = await (await api.SendMessageAsync(new { content = "are you in?", recipientPhone = phone, stopOnReply = true }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        _messages.Incoming(phone, "not interested", "SMS");
        await Eventually.TrueAsync(async () => (await api.GetJsonAsync("/api/messages?direction=inbound"))["items"]!.AsArray().Count == 1, "the reply taken in");

        var original = await Until(api, problem["message"].Str("id"), x => x.StrOrNull("fallbackTo") is not null, "the late error 22's fallback");
        var fallback = await Until(api, original.Str("fallbackTo"), x => x.Str("status") is "sent" or "failed" or "cancelled", "the fallback settled");
        Assert.That((fallback.Str("status"), fallback["error"].Str("code")), Is.EqualTo(("cancelled", "replied")), fallback.ToJsonString());
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "the SMS was not sent");
    }

    [Test]
    public async Task ASendMarkedSentAfterTheConfirmTimeout_ShouldTurnUnconfirmedIntoSent()
    {
        using var agent = Agent(confirmTimeout: TimeSpan.FromSeconds(1));
        using var api = agent.Api();
        // The row is there at once, but Messages marks it sent only after the agent's confirmation deadline.
        _messages.Control(new { confirmDelayMs = 6000 });

        var problem = await (await api.SendMessageAsync(new { content = "slow Messages", recipientPhone = "+12025550199" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));

        var sent = await Until(api, problem.Str("messageId"), x => x.Str("status") == "sent", "confirmed late");
        Assert.That(sent.StrOrNull("error"), Is.Null);
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{sent.Str("id")}/events"))!.Select(e => e.Str("status")).ToList();
        Assert.That(events, Does.Contain("failed").And.Contain("sent"), "the history keeps both: it looked lost, then chat.db showed it went");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));
    }

    [Test]
    public async Task Availability_ShouldAskTheProbe_WhenNothingElseIsKnown()
    {
        var probe = _dir.File("probe.sh");
        File.WriteAllText(probe, "#!/bin/sh\ncase \"$1\" in *0100) echo imessage;; *0101) echo sms;; *) echo unknown;; esac\n");
        File.SetUnixFileMode(probe, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var agent = Agent(extra: new Dictionary<string, string?> { ["Bridge:AvailabilityProbe"] = probe });
        using var api = agent.Api();

        var results = (await (await api.PostAsJsonAsync("/api/availability", new { addresses = new[] { "+12025550100", "+12025550101", "+12025550102" } }))
            .Content.ReadFromJsonAsync<List<JsonObject>>())!;

        Assert.That(results.Select(r => (r.Str("imessage"), r.Str("source"), r.Str("sendAs"))), Is.EqualTo(new[]
        {
            ("available", "probe", "imessage"), ("unavailable", "probe", "sms"), ("unknown", "none", "imessage"),
        }));
    }

    [Test]
    public async Task Restart_ShouldConfirmASendingIMessageFromChatDb_WithoutResending()
    {
        using var dir = new TempDir();
        var first = Agent(dataDir: dir);
        _messages.Control(new { confirmDelayMs = 100 });
        string id;
        using (var api = first.Api())
        {
            id = (await (await api.SendMessageAsync(new { content = "before the crash", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created)).Str("id");
        }
        first.Dispose();
        // As if the agent had died right after the hand-off: the row is back in `sending`, unmatched.
        var db = new LineAgent.Storage.Db(dir.File("lineagent.db"));
        await using (var c = await db.OpenAsync())
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE messages SET status = 'sending', sent_at = NULL, channel_ref = NULL, claim = 'dead-run' WHERE id = @id";
            cmd.Parameters.AddWithValue("@id", id);
            Assert.That(cmd.ExecuteNonQuery(), Is.EqualTo(1));
        }

        using var second = new AgentFactory(dir, settings: _messages.Settings(), systemClock: true);
        using var api2 = second.Api();
        var m = await Until(api2, id, x => x.Str("status") == "sent", "confirmed after the restart");
        Assert.That(m.Str("channelRef"), Is.Not.Null);
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "never resent");
    }

    /// <summary>
    /// SIGKILL while a Messages script runs, after it wrote its row: that send's outcome (which carried its chat.db
    /// baseline) never reached the disk. An earlier send of the same text to the same person was accepted and is still
    /// waiting for a row that never came. After the restart the row is the later send's: its baseline, read before the
    /// script, is now on disk before the script runs (migration 015). Before, the recovered send had no baseline, the
    /// earlier send (which had one) was matched first and took the row: a false `sent`, and the send that wrote it ended
    /// `unconfirmed`.
    /// </summary>
    [Test]
    public async Task ASendCutOffByACrashWhileItsScriptRan_ShouldGetItsOwnRow_NotAnEarlierSendOfTheSameText()
    {
        using var dataDir = new TempDir();
        _messages = new MessagesEmulator(_dir.File("messages"));
        var settings = _messages.Settings(confirmTimeout: TimeSpan.FromSeconds(90), scriptTimeout: TimeSpan.FromSeconds(60));
        // The sends in flight must not be answered (202 sending after Api:SendWaitSeconds) before the kill on a slow machine.
        settings["Api:SendWaitSeconds"] = "600";
        var args = AgentProcess.Args(settings);
        const string phone = "+12025550911";
        string earlier, later;
        using (var agent = await AgentProcess.StartAsync(dataDir.Path, args: args))
        using (var api = agent.Api())
        {
            // Messages takes the earlier send, and no row comes for it.
            _messages.Control(new { recordOnly = true });
            var first = api.SendMessageAsync(new { content = "same words", type = "imessage", recipientPhone = phone });
            earlier = (await Eventually.ValueAsync(() => api.GetJsonAsync("/api/messages?status=sending")!, x => x["items"]!.AsArray().Count == 1,
                "the earlier send handed off"))["items"]![0].Str("id");
            await Eventually.TrueAsync(async () => (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{earlier}/events"))!
                .Any(e => e.StrOrNull("code") == "accepted"), "the earlier send accepted, with its baseline");

            // A row from someone else: the later send's baseline is above the earlier one's (each is placed by its own).
            _messages.Incoming("+12025550999", "unrelated");
            // The later send's script writes its row, then takes 30 s to answer: the agent dies in between (once Messages has
            // marked the row sent: the emulator's timeline that does it is started by the script, which the kill ends).
            _messages.Control(new { returnDelayMs = 30_000, confirmDelayMs = 200 });
            var second = api.SendMessageAsync(new { content = "same words", type = "imessage", recipientPhone = phone });
            await Eventually.TrueAsync(() => _messages.Query("SELECT is_sent FROM message WHERE is_from_me = 1") == "1", "the later send's row in chat.db, sent");
            later = (await api.GetJsonAsync("/api/messages?status=sending"))["items"]!.AsArray().Select(m => m.Str("id")).Single(id => id != earlier);
            agent.Kill(first, second);
        }
        var row = _messages.Query("SELECT guid FROM message WHERE is_from_me = 1");

        using (var agent = await AgentProcess.StartAsync(dataDir.Path, args: args))
        using (var api = agent.Api())
        {
            // Whichever send takes the row: the first match decides (the earlier one would never give it back).
            await Eventually.TrueAsync(async () =>
            {
                foreach (var id in new[] { earlier, later })
                    if ((await api.GetJsonAsync($"/api/messages/{id}")).StrOrNull("channelRef") is not null)
                        return true;
                return false;
            }, "the row matched to a send", TimeSpan.FromSeconds(30));
            Assert.That((await api.GetJsonAsync($"/api/messages/{earlier}")).StrOrNull("channelRef"), Is.Null, "the earlier send took the later send's row");
            var settled = await Until(api, later, x => x.Str("status") is "sent" or "failed", "the later send settled");
            Assert.That((settled.Str("status"), settled.StrOrNull("channelRef")), Is.EqualTo(("sent", row)), settled.ToJsonString());
            var old = await api.GetJsonAsync($"/api/messages/{earlier}");
            Assert.That((old.Str("status"), old.StrOrNull("channelRef")), Is.EqualTo(("sending", (string?)null)), "the earlier send still waits for its own row");
        }
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(2), "neither was sent again");
    }

    /// <summary>
    /// Two lines on one Messages, no send-now wait: line one's script holds Messages for 5 s before it sends ("from line one" to
    /// <paramref name="first"/>), and line two's send ("from line two" to <paramref name="second"/>) is handed off and waits for it.
    /// </summary>
    private async Task<(AgentProcess Agent, HttpClient Api, string Running, string Waiting)> ASendWaitingForMessagesAsync(TempDir dataDir,
        string first, string second)
    {
        _messages = new MessagesEmulator(_dir.File("messages"));
        var settings = _messages.Settings(confirmTimeout: TimeSpan.FromSeconds(20), scriptTimeout: TimeSpan.FromSeconds(60));
        settings["Lines:1:Id"] = "second";
        settings["Lines:1:Pacing:Enabled"] = "false";
        settings["Api:SendWaitSeconds"] = "0";
        var agent = await AgentProcess.StartAsync(dataDir.Path, args: AgentProcess.Args(settings));
        var api = agent.Api();
        _messages.Control(new { sendDelayMs = 5_000, confirmDelayMs = 100 });
        var running = (await (await api.SendMessageAsync(new { content = "from line one", type = "imessage", recipientPhone = first, lineId = "default" }))
            .ExpectAsync(HttpStatusCode.Accepted)).Str("id");
        await Eventually.TrueAsync(() => _messages.Calls().Count(c => c.Script == "send.applescript") == 1, "line one's script running");
        var waiting = (await (await api.SendMessageAsync(new { content = "from line two", type = "imessage", recipientPhone = second, lineId = "second" }))
            .ExpectAsync(HttpStatusCode.Accepted)).Str("id");
        await Until(api, waiting, x => x.Str("status") == "sending", "line two's send handed off, waiting for Messages");
        Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "line two's script has not started");
        return (agent, api, running, waiting);
    }

    /// <summary>
    /// An opt-out that comes while a send waits at the Messages gate (another line's script holds Messages): the send was
    /// handed off before it, but nothing has reached Messages yet. It went out seconds after POST /api/suppressions
    /// answered 201 (probe); now the gate asks the dispatcher's checks again and it fails `suppressed`, unsent.
    /// </summary>
    [Test]
    public async Task AnOptOutWhileASendWaitsForMessages_ShouldStopIt()
    {
        using var dataDir = new TempDir();
        var (agent, api, _, waiting) = await ASendWaitingForMessagesAsync(dataDir, "+12025550922", "+12025550923");
        using var _agent = agent;
        using var _api = api;

        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550923" })).ExpectAsync(HttpStatusCode.Created);

        var settled = await Until(api, waiting, x => x.Str("status") is "sent" or "failed", "line two's send settled");
        Assert.That((settled.Str("status"), settled["error"]?.Str("code")), Is.EqualTo(("failed", "suppressed")), settled.ToJsonString());
        var sends = _messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[2])).ToList();
        Assert.That(sends, Is.EqualTo(new[] { "from line one" }), "line two's text never reached Messages");
    }

    /// <summary>
    /// A cancel of a send that waits at the Messages gate (another line's script holds Messages): handed off, so it showed
    /// `sending`, but nothing had reached Messages, and the cancel was refused 409 `not_cancellable` (probe G). Now it is
    /// cancelled and its script never runs; the send whose script is running is still refused (it may go out).
    /// </summary>
    [Test]
    public async Task ACancelWhileASendWaitsForMessages_ShouldStopIt_AndARunningScriptStayNotCancellable()
    {
        using var dataDir = new TempDir();
        var (agent, api, running, waiting) = await ASendWaitingForMessagesAsync(dataDir, "+12025550924", "+12025550925");
        using var _agent = agent;
        using var _api = api;

        var refused = await (await api.PostAsync($"/api/messages/{running}/cancel", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That((refused.Str("code"), refused.Str("messageStatus")), Is.EqualTo(("not_cancellable", "sending")), "line one's script is running");
        var cancelled = await (await api.PostAsync($"/api/messages/{waiting}/cancel", null)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(cancelled.Str("status"), Is.EqualTo("cancelled"));

        // Line two takes its next send only once the cancelled one's attempt is over: when this one is sent, that attempt ended.
        var next = (await (await api.SendMessageAsync(new { content = "next on line two", type = "imessage", recipientPhone = "+12025550926", lineId = "second" }))
            .ExpectAsync(HttpStatusCode.Accepted)).Str("id");
        await Until(api, next, x => x.Str("status") is "sent" or "failed", "line two's next send settled");
        var sends = _messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[2])).ToList();
        Assert.That(sends, Is.EqualTo(new[] { "from line one", "next on line two" }), "the cancelled text never reached Messages");
        var after = await api.GetJsonAsync($"/api/messages/{waiting}");
        Assert.That((after.Str("status"), after.StrOrNull("sentAt")), Is.EqualTo(("cancelled", (string?)null)), after.ToJsonString());
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{waiting}/events"))!;
        Assert.That(events[^1].Str("status"), Is.EqualTo("cancelled"), "nothing after the cancel");
    }

    /// <summary>
    /// A reply to a stop-on-reply message that comes during a retry's backoff (osascript could not be started: provably not
    /// sent, retried after Resilience:RetryBaseDelay): the retry's script must not run (review: only a send that waited for
    /// the gate was checked again).
    /// </summary>
    [Test]
    public async Task AReplyDuringARetrysBackoff_ShouldStopTheRetry()
    {
        using var agent = Agent(extra: new Dictionary<string, string?> { ["Resilience:RetryBaseDelay"] = "00:00:04", ["Api:SendWaitSeconds"] = "0" });
        using var api = agent.Api();
        var mode = File.GetUnixFileMode(_messages.Osascript);
        File.SetUnixFileMode(_messages.Osascript, mode & ~(UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute));
        try
        {
            var response = await api.SendMessageAsync(new { content = "are you free?", type = "imessage", recipientPhone = "+12025550931", stopOnReply = true });
            Assert.That(response.StatusCode, Is.AnyOf(HttpStatusCode.Created, HttpStatusCode.Accepted), "stored (queued or already sending)");
            var id = (await response.Content.ReadFromJsonAsync<JsonObject>())!.Str("id");
            await Eventually.TrueAsync(async () => (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{id}/events"))!
                .Any(e => e.StrOrNull("detail")?.StartsWith("attempt 1 in ", StringComparison.Ordinal) == true), "the first attempt failed and a retry waits");

            _messages.Incoming("+12025550931", "stop texting me please");
            File.SetUnixFileMode(_messages.Osascript, mode);

            var settled = await Until(api, id, x => x.Str("status") is "sent" or "failed" or "cancelled", "the message settled");
            Assert.That((settled.Str("status"), settled["error"]?.Str("code")), Is.EqualTo(("cancelled", "replied")), settled.ToJsonString());
            Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.Zero, "the retry's script never ran");
        }
        finally
        {
            File.SetUnixFileMode(_messages.Osascript, mode);
        }
    }

    /// <summary>
    /// SIGKILL while a send waits at the Messages gate (another line's script holds Messages): it was handed off, but its
    /// script never started. Its baseline is stored just before the script, so after the restart a handed-off send without
    /// one is proven not sent: it goes out, once. Before, it stayed `sending` and failed `unconfirmed` ("maybe sent", a
    /// resend only with force) after Bridge:ConfirmTimeout.
    /// </summary>
    [Test]
    public async Task ASendKilledWhileWaitingForMessages_ShouldGoOutAfterTheRestart_Once()
    {
        using var dataDir = new TempDir();
        _messages = new MessagesEmulator(_dir.File("messages"));
        var settings = _messages.Settings(confirmTimeout: TimeSpan.FromSeconds(3), scriptTimeout: TimeSpan.FromSeconds(60));
        settings["Lines:1:Id"] = "second";
        settings["Lines:1:Pacing:Enabled"] = "false";
        settings["Api:SendWaitSeconds"] = "600";
        var args = AgentProcess.Args(settings);
        string waiting;
        using (var agent = await AgentProcess.StartAsync(dataDir.Path, args: args))
        using (var api = agent.Api())
        {
            // Line one's script holds Messages for 30 s before it sends; line two's send waits for it.
            _messages.Control(new { sendDelayMs = 30_000 });
            var first = api.SendMessageAsync(new { content = "from line one", type = "imessage", recipientPhone = "+12025550912", lineId = "default" });
            await Eventually.TrueAsync(() => _messages.Calls().Count(c => c.Script == "send.applescript") == 1, "line one's script running");
            var second = api.SendMessageAsync(new { content = "from line two", type = "imessage", recipientPhone = "+12025550913", lineId = "second" });
            var sending = await Eventually.ValueAsync(() => api.GetJsonAsync("/api/messages?status=sending")!, x => x["items"]!.AsArray().Count == 2,
                "line two's send handed off");
            waiting = sending["items"]!.AsArray().Single(m => m.Str("lineId") == "second").Str("id");
            Assert.That(_messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1), "line two's script has not started");
            agent.Kill(first, second);
        }

        _messages.Control(new { confirmDelayMs = 200 });
        using (var agent = await AgentProcess.StartAsync(dataDir.Path, args: args))
        using (var api = agent.Api())
        {
            var settled = await Until(api, waiting, x => x.Str("status") is "sent" or "failed", "line two's send settled");
            Assert.That((settled.Str("status"), settled.StrOrNull("channelRef") is not null), Is.EqualTo(("sent", true)), settled.ToJsonString());
            var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{waiting}/events"))!;
            Assert.That(events.Select(e => e.StrOrNull("detail") ?? ""), Has.Some.Contains("proves it was not sent"), "requeued by the recovery");
        }
        var sends = _messages.Calls().Where(c => c.Script == "send.applescript").Select(c => MessagesEmulator.Utf8(c.Argv[2])).ToList();
        Assert.That(sends.Count(t => t == "from line two"), Is.EqualTo(1), string.Join(", ", sends));
        Assert.That(sends.Count(t => t == "from line one"), Is.EqualTo(1), "line one's script had started: not resent (" + string.Join(", ", sends) + ")");
    }

    /// <summary>
    /// Start-up recovery reads chat.db's new replies before sending resumes, but only as far as it can: a chat.db damaged
    /// past its first page (SQLite error 11 while reading the new rows) must not hold back every channel. Before, recovery
    /// failed on it for ever, /api/status blamed the agent's own storage, and an email was never sent.
    /// </summary>
    [Test]
    public async Task AChatDbDamagedWhileTheAgentWasDown_ShouldNotHoldBackEmail()
    {
        using var dir = new TempDir();
        using var smtp = new SmtpStandIn(_dir.File("mail"));
        var first = Agent(dataDir: dir, extra: smtp.Settings());
        _messages.Control(new { confirmDelayMs = 50 });
        using (var api = first.Api())
            await (await api.SendMessageAsync(new { content = "hi", type = "imessage", recipientPhone = "+12025550199" })).ExpectAsync(HttpStatusCode.Created);
        first.Dispose();

        // Many rows arrive while the agent is down; then one of their pages is damaged (the first page still reads).
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_messages.ChatDb};Pooling=False"))
        {
            c.Open();
            using var tx = c.BeginTransaction();
            for (var i = 0; i < 3000; i++)
            {
                using var cmd = c.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = "INSERT INTO message (guid, text, is_from_me, date) VALUES ($g, $t, 0, 0)";
                cmd.Parameters.AddWithValue("$g", $"damaged-{i}");
                cmd.Parameters.AddWithValue("$t", new string('x', 300));
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
            using var checkpoint = c.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            checkpoint.ExecuteNonQuery();
        }
        var length = new FileInfo(_messages.ChatDb).Length;
        using (var f = new FileStream(_messages.ChatDb, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Seek(length - 4096 * 40, SeekOrigin.Begin);
            f.Write(Enumerable.Repeat((byte)0xFF, 4096).ToArray());
        }

        var settings = _messages.Settings();
        foreach (var (k, v) in smtp.Settings())
            settings[k] = v;
        using var second = new AgentFactory(dir, settings: settings, systemClock: true);
        using var api2 = second.Api();
        var mail = await (await api2.SendMessageAsync(new { content = "hello by mail", type = "email", recipientEmail = "ana@example.com", subject = "Hello" }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(mail.Str("status"), Is.EqualTo("sent"));
        Assert.That(smtp.Received(), Has.Count.EqualTo(1));
        Assert.That((await api2.GetJsonAsync("/api/status"))["storage"].Str("state"), Is.Not.EqualTo("error"), "not blamed on the agent's own database");
    }

    private IEnumerable<int> EmulatorPids()
    {
        var path = Path.Combine(_messages.Home, "calls.ndjson");
        return _messages.Calls().Count == 0 ? [] : File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!["pid"]!.GetValue<int>());
    }
}
