using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Channels;

/// <summary>SMS through the API to an HTTP server on loopback that answers like Twilio.</summary>
public sealed class TwilioChannelTests
{
    private TwilioStandIn _twilio = null!;

    [SetUp]
    public async Task SetUp() => _twilio = await TwilioStandIn.StartAsync();

    [TearDown]
    public async Task TearDown() => await _twilio.DisposeAsync();

    private AgentFactory Agent(IDictionary<string, string?>? extra = null, TempDir? dataDir = null)
    {
        var settings = _twilio.Settings();
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
            settings[k] = v;
        return new AgentFactory(dataDir, settings: settings, systemClock: true);
    }

    /// <summary>
    /// A STOP texted to the line's number while the agent was down (a restart, the Mac asleep), and a message to that
    /// person that fell due meanwhile: the start reads Twilio's replies before anything is sent. Before, the dispatcher sent
    /// it a moment before the inbound poll read the STOP (black-box probe; here the list answers a second late, as over a
    /// slow network, which the dispatcher then always won).
    /// </summary>
    [Test]
    public async Task AStopThatCameWhileTheAgentWasDown_ShouldSuppressTheMessageDueMeanwhile()
    {
        using var dir = new TempDir();
        // Twilio:Timeout bounds the start's wait for the list: ample here, so a loaded machine does not end the wait first.
        var slowPolls = new Dictionary<string, string?> { ["Twilio:InboundPollInterval"] = "01:00:00", ["Twilio:Timeout"] = "00:00:15" };
        const string to = "+12025550182";
        DateTimeOffset at, stop;
        string id;
        using (var first = Agent(slowPolls, dir))
        {
            using var api = first.Api();
            await (await api.SendMessageAsync(Sms(to, "Hi, your table is ready"))).ExpectAsync(HttpStatusCode.Created);
            stop = DateTimeOffset.UtcNow.AddSeconds(1); // Twilio dates to the second: a reply is dated after the send it answers
            at = DateTimeOffset.UtcNow.AddSeconds(2);
            id = (await (await api.SendMessageAsync(new { content = "Still hungry?", recipientPhone = to, scheduledAt = at.ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id");
            // Its first poll has set where replies start (a first start does not import the number's history).
            await Eventually.TrueAsync(() => _twilio.Requests.Any(r => r.Method == "GET" && r.Path.EndsWith("/Messages.json")), "the first inbound poll");
        }
        _twilio.AddInbound(to, "STOP", stop);
        _twilio.ListDelay = TimeSpan.FromSeconds(1);
        await Eventually.TrueAsync(() => DateTimeOffset.UtcNow > at.AddSeconds(1), "the message fell due while the agent was down", TimeSpan.FromSeconds(10));

        using (var second = Agent(slowPolls, dir))
        {
            using var api = second.Api();
            var m = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{id}")!, x => x.Str("status") is "failed" or "sent" || x.StrOrNull("channelRef") is not null,
                "the message failed, or went to Twilio", TimeSpan.FromSeconds(30));
            Assert.That((m.Str("status"), m["error"]?["code"]?.GetValue<string>()), Is.EqualTo(("failed", "suppressed")), m.ToJsonString());
            Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "only the first text went to Twilio");
        }
    }

    private static object Sms(string to, string content = "Your table is ready") => new { content, recipientPhone = to };

    [Test]
    public async Task Sms_ShouldBePostedLikeTwilio_ThenFollowedUntilDelivered()
    {
        using var agent = Agent();
        using var api = agent.Api();

        var m = await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.Created);

        Assert.That((m.Str("type"), m.Str("channel"), m.Str("status")), Is.EqualTo(("sms", "twilio", "sending")),
            "auto on a line without iMessage is SMS; Twilio accepted it, its status is followed");
        var sid = m.Str("channelRef");
        Assert.That(sid, Does.StartWith("SM"));
        var post = _twilio.Requests.Single(r => r.Method == "POST");
        Assert.That(post.Path, Is.EqualTo($"/2010-04-01/Accounts/{TwilioStandIn.Sid}/Messages.json"));
        Assert.That(post.Authorization, Is.EqualTo("Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes($"{TwilioStandIn.Sid}:{TwilioStandIn.Token}"))));
        Assert.That(post.Form["To"], Is.EqualTo("+12025550123"));
        Assert.That(post.Form["From"], Is.EqualTo(TwilioStandIn.From));
        Assert.That(post.Form["Body"], Is.EqualTo("Your table is ready"));

        _twilio.Statuses[sid] = ("sent", null);
        await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{m.Str("id")}")!, x => x.Str("status") == "sent", "sent");
        _twilio.Statuses[sid] = ("delivered", null);
        var delivered = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{m.Str("id")}")!, x => x.Str("delivery") == "delivered", "delivered");
        Assert.That(delivered.Str("deliveredAt"), Is.Not.Null);
        Assert.That(_twilio.Requests.Any(r => r.Method == "GET" && r.Path.EndsWith($"/Messages/{sid}.json")), Is.True);
    }

    [Test]
    public async Task UndeliveredAtTwilio_ShouldBeSentButNotDelivered_WithTwiliosErrorCode()
    {
        // Twilio's `undelivered`: a carrier receipt said it was not delivered, so it left Twilio. Recorded the same whether a
        // pass saw `sent` first or not (before, straight from queued it was `failed`, and a retry needed no force).
        using var agent = Agent();
        using var api = agent.Api();
        await using var hooks = await LineAgent.Tests.Webhooks.WebhookReceiver.StartAsync();
        hooks.Secret = (await (await api.PostAsJsonAsync("/api/webhooks", new { url = hooks.Url })).ExpectAsync(HttpStatusCode.Created)).Str("secret");
        var m = await (await api.SendMessageAsync(Sms("+12025550124"))).ExpectAsync(HttpStatusCode.Created);
        _twilio.Statuses[m.Str("channelRef")] = ("undelivered", 30003);

        var settled = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{m.Str("id")}")!,
            x => x.Str("delivery") == "not_delivered", "not delivered");
        Assert.That(settled.Str("status"), Is.EqualTo("sent"));
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{m.Str("id")}/events"))!;
        var notDelivered = events.Single(e => e.StrOrNull("code") == "twilio_undelivered");
        Assert.That(notDelivered.Str("detail"), Does.Contain("30003"));
        // The message itself says why (before, only its events did: `error` was null).
        Assert.That(settled["error"].Str("code"), Is.EqualTo("twilio_undelivered"), settled.ToJsonString());
        Assert.That(settled["error"]!["channelCode"]!.GetValue<long>(), Is.EqualTo(30003));
        Assert.That(settled["error"].Str("message"), Does.Contain("30003"));
        // A subscriber hears it too (review: it got `message.sent` and then nothing, as if the message had arrived).
        await Eventually.TrueAsync(() => hooks.Accepted.Any(h => h.Type == "message.not_delivered"), "a message.not_delivered webhook");
        Assert.That(hooks.Accepted.Single(h => h.Type == "message.not_delivered"), Is.EqualTo(
            hooks.Accepted.Single(h => h.Type == "message.not_delivered") with { MessageId = m.Str("id"), SignatureValid = true }));
    }

    /// <summary>
    /// Twilio's `read` (RCS, WhatsApp) seen while the message is still `sending`: it was sent, delivered and read (review:
    /// nothing changed, and after Twilio:ConfirmTimeout it failed `unconfirmed`).
    /// </summary>
    [Test]
    public async Task ReadAtTwilio_SeenFirst_ShouldBeSentAndRead()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var m = await (await api.SendMessageAsync(Sms("+12025550125"))).ExpectAsync(HttpStatusCode.Created);
        _twilio.Statuses[m.Str("channelRef")] = ("read", null);

        var read = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{m.Str("id")}")!, x => x.Str("delivery") == "read", "read");
        Assert.That(read.Str("status"), Is.EqualTo("sent"));
        Assert.That(read.Str("readAt"), Is.Not.Null);
        Assert.That(read.Str("deliveredAt"), Is.Not.Null);
    }

    [Test]
    public async Task Error21211_ShouldFailAsInvalidRecipient_WithoutRetry()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.InvalidNumber))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("invalid_recipient"));
        Assert.That(problem["message"]!["error"]!["channelCode"]!.GetValue<long>(), Is.EqualTo(21211));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1));
    }

    [TestCase(TwilioStandIn.GatewayHtml, Description = "503 with an HTML body: the SDK cannot read a status or code from it")]
    [TestCase(TwilioStandIn.ServerError, Description = "500 with Twilio's JSON error")]
    public async Task AServerErrorAfterTheRequest_ShouldFailUnconfirmed_NotBeRetried_AndARetryShouldNeedForce(string to)
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(to))).ExpectAsync(HttpStatusCode.InternalServerError);
        var message = problem["message"]!;
        Assert.That(message["error"].Str("code"), Is.EqualTo("unconfirmed"), message.ToJsonString());
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1));
        var retry = await (await api.PostAsync($"/api/messages/{message.Str("id")}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(retry.Str("code"), Is.EqualTo("maybe_sent"));
    }

    [Test]
    public async Task ASidTwilioNoLongerKnows_ShouldFailUnconfirmed_AfterTheConfirmTimeout()
    {
        // Deleted or redacted at Twilio, or the account changed: every fetch answers 404. Before, it stayed `sending` forever.
        using var agent = Agent(new Dictionary<string, string?> { ["Twilio:ConfirmTimeout"] = "00:00:01" });
        using var api = agent.Api();
        var m = await (await api.SendMessageAsync(Sms("+12025550125"))).ExpectAsync(HttpStatusCode.Created);
        Assert.That(m.Str("status"), Is.EqualTo("sending"));
        _twilio.Statuses.TryRemove(m.Str("channelRef"), out _);

        var failed = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{m.Str("id")}")!, x => x.Str("status") == "failed", "failed");
        Assert.That(failed["error"].Str("code"), Is.EqualTo("unconfirmed"));
        Assert.That(failed["error"].Str("message"), Does.Contain("could not be read").And.Contain("not sent again"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1));
    }

    [TestCase(5, Description = "the STOP first, listed last (Twilio lists newest first)")]
    [TestCase(0, Description = "the same second: Twilio dates to the second")]
    public async Task TwoRepliesInOnePoll_ShouldBothBeTaken_SoAStopIsNeverLost(int secondsBetween)
    {
        // Twilio lists newest first; the reply intake ignores a reply older than the newest it has from that number.
        using var agent = Agent(new Dictionary<string, string?> { ["Twilio:InboundPollInterval"] = "00:00:00.200" });
        using var api = agent.Api();
        await (await api.SendMessageAsync(Sms("+12025550177", "Hi, your table is ready"))).ExpectAsync(HttpStatusCode.Created);
        var sent = DateTimeOffset.UtcNow; // a reply is one that follows a send of ours
        _twilio.Inbound.Clear();
        _twilio.AddInbound("+12025550177", "STOP", sent.AddSeconds(1));
        _twilio.AddInbound("+12025550177", "who is this?", sent.AddSeconds(1 + secondsBetween));

        await Eventually.TrueAsync(async () => (await api.GetAsync("/api/suppressions/%2B12025550177")).StatusCode == HttpStatusCode.OK,
            "the STOP to suppress the number");
        var inbound = await Eventually.ValueAsync(() => api.GetJsonAsync("/api/messages?direction=inbound")!,
            page => page["items"]!.AsArray().Count == 2, "both replies stored");
        Assert.That(inbound["items"]!.AsArray().Select(i => i.Str("content")), Is.EquivalentTo(new[] { "STOP", "who is this?" }));
    }

    [Test]
    public async Task AReply_ShouldGoToTheLastTwilioSendHandedOver_EvenBeforeItsStatusPollSawItSent()
    {
        // Twilio's sent_at is when the agent's status poll saw the send `sent`, not Twilio's own date: a send of the moment
        // that the person answers at once is still `sending` here. Ranking by sent_at gave the reply to the older send (review).
        using var agent = Agent(new Dictionary<string, string?> { ["Twilio:InboundPollInterval"] = "00:00:00.200" });
        using var api = agent.Api();
        var older = await (await api.SendMessageAsync(Sms("+12025550176", "Your table is ready"))).ExpectAsync(HttpStatusCode.Created);
        _twilio.Statuses[older.Str("channelRef")] = ("sent", null);
        await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{older.Str("id")}")!, x => x.Str("status") == "sent", "the first sent");
        var latest = await (await api.SendMessageAsync(Sms("+12025550176", "We close at 11 tonight, shall we keep it?"))).ExpectAsync(HttpStatusCode.Created);
        Assert.That(latest.Str("status"), Is.EqualTo("sending"), "Twilio has not said it is sent yet");

        _twilio.Inbound.Clear();
        _twilio.AddInbound("+12025550176", "yes please", DateTimeOffset.UtcNow.AddSeconds(2));

        var reply = await Eventually.ValueAsync(() => api.GetJsonAsync("/api/messages?direction=inbound")!,
            page => page["items"]!.AsArray().Count == 1, "the reply stored");
        Assert.That(reply["items"]![0].Str("replyTo"), Is.EqualTo(latest.Str("id")), "the reply answers the text just sent");
        Assert.That((await api.GetJsonAsync($"/api/messages/{latest.Str("id")}")).Str("status"), Is.EqualTo("sending"),
            "still not seen sent by the status poll when the reply was taken in");
    }

    [Test]
    public async Task ALineWithOnlyAMessagingService_ReadsRepliesToEveryNumberOfItsPool()
    {
        // Replies reach whichever number of the service's pool Twilio chose; the line has no Sms:From of its own.
        const string service = "MG0000000000000000000000000000abcd";
        _twilio.ServiceNumbers[service] = ["+12025550001", "+12025550002"];
        _twilio.ServiceShortCodes[service] = ["894546"];
        using var agent = Agent(new Dictionary<string, string?>
        {
            ["Lines:0:Sms:From"] = null, ["Lines:0:Sms:MessagingServiceSid"] = service, ["Twilio:InboundPollInterval"] = "00:00:00.200",
        });
        using var api = agent.Api();
        await (await api.SendMessageAsync(Sms("+12025550178", "Hi, your table is ready"))).ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(Sms("+12025550179", "Hi, your table is ready"))).ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(Sms("+12025550180", "Hi, your table is ready"))).ExpectAsync(HttpStatusCode.Created);
        var sent = DateTimeOffset.UtcNow;
        _twilio.Inbound.Clear();
        _twilio.AddInbound("+12025550178", "STOP", sent.AddSeconds(1), to: "+12025550002");
        _twilio.AddInbound("+12025550179", "thanks", sent.AddSeconds(1), to: "+12025550001");
        _twilio.AddInbound("+12025550178", "to a number not in the pool", sent.AddSeconds(2), to: "+12025550999");
        _twilio.AddInbound("+12025550180", "STOP", sent.AddSeconds(1), to: "894546");

        await Eventually.TrueAsync(async () => (await api.GetAsync("/api/suppressions/%2B12025550178")).StatusCode == HttpStatusCode.OK,
            "the STOP to the pool's second number suppresses the sender");
        await Eventually.TrueAsync(async () => (await api.GetAsync("/api/suppressions/%2B12025550180")).StatusCode == HttpStatusCode.OK,
            "the STOP to the service's short code suppresses the sender");
        var inbound = await Eventually.ValueAsync(() => api.GetJsonAsync("/api/messages?direction=inbound")!,
            page => page["items"]!.AsArray().Count == 3, "the replies to the pool's numbers and short code stored");
        Assert.That(inbound["items"]!.AsArray().Select(i => i.Str("content")), Is.EquivalentTo(new[] { "STOP", "thanks", "STOP" }));
        Assert.That(_twilio.Requests.Any(r => r.Path == $"/v1/Services/{service}/PhoneNumbers"), Is.True);
        Assert.That(_twilio.Requests.Count(r => r.Path == $"/v1/Services/{service}/PhoneNumbers"), Is.EqualTo(1),
            "the pool is read again only after a few minutes, not at every poll");
        Assert.That(_twilio.Requests.Count(r => r.Path == $"/v1/Services/{service}/ShortCodes"), Is.EqualTo(1));
    }

    [Test]
    public async Task AFailingShortCodeList_ShouldNotStopRepliesToTheServicesPhoneNumbers()
    {
        const string service = "MG0000000000000000000000000000abce";
        _twilio.ServiceNumbers[service] = ["+12025550003"];
        _twilio.ShortCodesFail = true;
        using var agent = Agent(new Dictionary<string, string?>
        {
            ["Lines:0:Sms:From"] = null, ["Lines:0:Sms:MessagingServiceSid"] = service, ["Twilio:InboundPollInterval"] = "00:00:00.200",
        });
        using var api = agent.Api();
        await (await api.SendMessageAsync(Sms("+12025550181", "Hi, your table is ready"))).ExpectAsync(HttpStatusCode.Created);
        _twilio.Inbound.Clear();
        _twilio.AddInbound("+12025550181", "STOP", DateTimeOffset.UtcNow.AddSeconds(1), to: "+12025550003");

        await Eventually.TrueAsync(async () => (await api.GetAsync("/api/suppressions/%2B12025550181")).StatusCode == HttpStatusCode.OK,
            "the STOP to the service's phone number, while its short codes cannot be listed");
        Assert.That(_twilio.Requests.Count(r => r.Path == $"/v1/Services/{service}/ShortCodes"), Is.EqualTo(1),
            "a failed list is asked again after a minute (ServiceListRetry), not at every poll");
    }

    [Test]
    public void TheDefaultBaseUrl_ShouldLeaveEachTwilioHostAsItIs_AStandInGetsThemAll()
    {
        // The Services API lives on messaging.twilio.com; sending it to api.twilio.com would answer 404 on a real account.
        var messaging = new Uri("https://messaging.twilio.com/v1/Services/MG00/PhoneNumbers?PageSize=400");
        var api = new Uri("https://api.twilio.com/2010-04-01/Accounts/AC00/Messages.json?To=%2B12025550100");
        var real = new LineAgent.Channels.Twilio.TwilioSmsChannel.BaseUrlHandler(new Uri(LineAgent.Channels.Twilio.TwilioOptions.DefaultBaseUrl));
        Assert.That((real.Target(messaging), real.Target(api)), Is.EqualTo((messaging, api)));
        foreach (var same in new[] { "https://API.twilio.com/", "https://api.twilio.com:443" })
            Assert.That(new LineAgent.Channels.Twilio.TwilioSmsChannel.BaseUrlHandler(new Uri(same)).Target(api).ToString(), Is.EqualTo(api.ToString()), same);
        // A regional edge (credentials are per region): every product host goes to the same edge and region, as the SDK's
        // own Edge and Region settings do.
        var edge = new LineAgent.Channels.Twilio.TwilioSmsChannel.BaseUrlHandler(new Uri("https://api.dublin.ie1.twilio.com"));
        Assert.That(edge.Target(api).ToString(), Is.EqualTo("https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC00/Messages.json?To=%2B12025550100"));
        Assert.That(edge.Target(messaging).ToString(), Is.EqualTo("https://messaging.dublin.ie1.twilio.com/v1/Services/MG00/PhoneNumbers?PageSize=400"));

        var standIn = new LineAgent.Channels.Twilio.TwilioSmsChannel.BaseUrlHandler(new Uri("http://127.0.0.1:5050/twilio/"));
        Assert.That(standIn.Target(messaging).ToString(), Is.EqualTo("http://127.0.0.1:5050/twilio/v1/Services/MG00/PhoneNumbers?PageSize=400"));
        Assert.That(standIn.Target(api).ToString(), Is.EqualTo("http://127.0.0.1:5050/twilio/2010-04-01/Accounts/AC00/Messages.json?To=%2B12025550100"));
    }

    [Test]
    public async Task Error21610_ShouldFailAsSuppressed_AndSuppressTheNumber()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.Unsubscribed))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("suppressed"));

        var suppression = await api.GetJsonAsync($"/api/suppressions/{Uri.EscapeDataString(TwilioStandIn.Unsubscribed)}");
        Assert.That(suppression.Str("source"), Is.EqualTo("twilio"));
        var again = await (await api.SendMessageAsync(Sms(TwilioStandIn.Unsubscribed, "again"))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(again["message"]!["error"].Str("code"), Is.EqualTo("suppressed"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "the second never reached Twilio");
    }

    [Test]
    public async Task Error429_ShouldBeRetriedWithBackoff_ThenSucceed()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var m = await (await api.SendMessageAsync(Sms(TwilioStandIn.RateLimitedTwice))).ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("channelRef"), Does.StartWith("SM"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(3));
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{m.Str("id")}/events"))!;
        Assert.That(events.Count(e => e.StrOrNull("code") == "retry"), Is.EqualTo(2));
    }

    /// <summary>
    /// A 4xx page that is not Twilio's JSON (the SDK says status 0 for it): something in front of Twilio refused the
    /// request, so nothing was sent; before, it ended `unconfirmed` and a retry needed force. A 403 may refuse this
    /// request alone (its text): the message fails `twilio_rejected`, not retried, and the next message goes (a first
    /// version retried it as a channel fault, which opened the circuit and held every other message: review).
    /// </summary>
    [Test]
    public async Task A403PageThatIsNotTwilios_ShouldFailThatMessageAsRejected_AndTheNextShouldGo()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.ForbiddenHtml))).ExpectAsync(HttpStatusCode.InternalServerError);
        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("twilio_rejected"), problem.ToJsonString());
        Assert.That(error.Str("message"), Does.Contain("HTTP 403").And.Contain("not Twilio's").And.Contain("nothing was sent"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "not retried");

        await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.Created);
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST" && r.Form["To"] == "+12025550123"), Is.EqualTo(1));
    }

    /// <summary>A proxy that wants a login refuses every request: like Twilio's own 401, a channel fault, not sent.</summary>
    [Test]
    public async Task A407PageFromAProxy_ShouldFailAsAuthFailed_ProvenNotSent()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.ProxyLoginHtml))).ExpectAsync(HttpStatusCode.InternalServerError);
        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("twilio_auth_failed"), problem.ToJsonString());
        Assert.That(error.Str("message"), Does.Contain("HTTP 407").And.Contain("Check the proxy"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1));
    }

    /// <summary>
    /// A Twilio:BaseUrl where the Messages API is not answers 404 to every message: a fault of the channel, proven not
    /// sent, named as such (before, each message failed `twilio_rejected` on its own and the circuit never opened).
    /// </summary>
    [Test]
    public async Task A404FromABaseUrlWithoutTheMessagesApi_ShouldFailAsEndpointNotFound_ProvenNotSent()
    {
        using var agent = Agent(new Dictionary<string, string?> { ["Twilio:BaseUrl"] = new Uri(_twilio.BaseUrl, "no-api-here/").ToString() });
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.InternalServerError);
        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("twilio_endpoint_not_found"), problem.ToJsonString());
        Assert.That(error.Str("message"), Does.Contain("HTTP 404").And.Contain("nothing was sent").And.Contain("Twilio:BaseUrl"));
        Assert.That(_twilio.Requests, Is.Empty, "the stand-in's Messages API was never reached");

        // The line's health (and so `lineagent doctor`) points at the setting too, not at the credentials.
        var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        var sms = line["health"]!.AsArray().Single(h => h.Str("type") == "sms")!;
        Assert.That(sms.Str("state"), Is.Not.EqualTo("ok"));
        Assert.That(sms.Str("detail"), Does.Contain("HTTP 404").And.Contain("check Twilio:BaseUrl"), sms.ToJsonString());
    }

    /// <summary>
    /// A Twilio:BaseUrl behind a proxy that redirects every request: the SDK takes any status below 400 as Twilio's answer,
    /// so the health check read a null account (a NullReferenceException as the line's health) and the pollers unreadable
    /// JSON (review). Every request says the redirect and the setting; the send is refused as a settings fault.
    /// </summary>
    [Test]
    public async Task ABaseUrlThatRedirectsEverything_ShouldBeSaidByTheHealth_AndTheSend()
    {
        _twilio.RedirectEverything = true;
        using var agent = Agent();
        using var api = agent.Api();
        var sms = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["health"]!.AsArray().Single(h => h.Str("type") == "sms")!;
        Assert.That(sms.Str("state"), Is.EqualTo("unavailable"), sms.ToJsonString());
        Assert.That(sms.Str("detail"), Does.Contain("HTTP 301").And.Contain("redirect to https://").And.Contain("Twilio:BaseUrl"), sms.ToJsonString());

        var problem = await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("twilio_endpoint_not_found"), problem.ToJsonString());
    }

    /// <summary>A 2xx that is not Twilio's message (no SID): it may have been taken, and there is nothing to follow it by.</summary>
    [Test]
    public async Task ACreatedAnswerWithoutASid_ShouldFailUnconfirmed_NotWaitAsSending()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.CreatedWithoutSid))).ExpectAsync(HttpStatusCode.InternalServerError);
        var message = problem["message"]!;
        Assert.That((message.Str("status"), message["error"].Str("code")), Is.EqualTo(("failed", "unconfirmed")), problem.ToJsonString());
        Assert.That(message["error"].Str("message"), Does.Contain("without a message SID"));
    }

    /// <summary>
    /// No TLS where https was asked for (a plain HTTP port): the handshake failed before the request was written, so nothing
    /// was sent. It failed `unconfirmed` ("may have been sent"), inviting a forced retry (black-box probe).
    /// </summary>
    [Test]
    public async Task ATlsHandshakeThatFails_ShouldBeUnreachable_NotUnconfirmed()
    {
        var https = new UriBuilder(_twilio.BaseUrl) { Scheme = "https" }.Uri;
        using var agent = Agent(new Dictionary<string, string?> { ["Twilio:BaseUrl"] = https.ToString(), ["Resilience:MaxRetries"] = "1" });
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("twilio_unreachable"), problem.ToJsonString());
        Assert.That(_twilio.Requests, Is.Empty, "no request reached it");
    }

    /// <summary>
    /// A connect that never completes (a firewall that drops the packets; here a listener whose queue is full): the request
    /// never left. It failed `unconfirmed` once Twilio:Timeout passed (black-box probe); the connect now gives up in half
    /// that, and the send is `twilio_unreachable`, proven not sent.
    /// </summary>
    [Test]
    public async Task AConnectThatHangs_ShouldBeUnreachable_NotUnconfirmed()
    {
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        // Fill its queue (never accepted) until a connect does not complete: from then on, connects to it hang.
        var fillers = new List<System.Net.Sockets.Socket>();
        try
        {
            var hangs = false;
            for (var i = 0; i < 16 && !hangs; i++)
            {
                var c = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                fillers.Add(c);
                hangs = !c.ConnectAsync(IPAddress.Loopback, port).Wait(TimeSpan.FromSeconds(1));
            }
            if (!hangs)
                Assert.Ignore("this system completes every connect to a full listener; no connect that hangs can be made here");

            using var agent = Agent(new Dictionary<string, string?> { ["Twilio:BaseUrl"] = $"http://127.0.0.1:{port}/", ["Resilience:MaxRetries"] = "1" });
            using var api = agent.Api();
            var problem = await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.InternalServerError);
            Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("twilio_unreachable"), problem.ToJsonString());
            Assert.That(problem["message"]!["error"].Str("message"), Does.Contain("No connection to 127.0.0.1"));
        }
        finally
        {
            foreach (var c in fillers)
                c.Dispose();
        }
    }

    /// <summary>
    /// The same in JSON: an API gateway's own 404, Twilio's 20404 behind a proxy with a wrong path. The SDK reads a
    /// status from these, so the HTML-page rule did not see them and each message failed `twilio_rejected` (review).
    /// </summary>
    /// <remarks>
    /// And a proxy that redirects (http to https): the client followed it, the POST became a GET of the Messages list, and the
    /// SDK read that as an accepted send without a SID, `sending` until a restart (black-box probe). Redirects are not
    /// followed: nothing was sent, and it is the setting's fault.
    /// </remarks>
    [TestCase(TwilioStandIn.GatewayJson404, "HTTP 404")]
    [TestCase(TwilioStandIn.Twilio20404, "HTTP 404")]
    [TestCase(TwilioStandIn.Redirects, "HTTP 301 (MovedPermanently), a redirect to https://")]
    public async Task A404InJsonOrARedirect_ShouldFailAsEndpointNotFound_ProvenNotSent(string to, string said)
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(to))).ExpectAsync(HttpStatusCode.InternalServerError);
        var error = problem["message"]!["error"]!;
        Assert.That(error.Str("code"), Is.EqualTo("twilio_endpoint_not_found"), problem.ToJsonString());
        Assert.That(error.Str("message"), Does.Contain(said).And.Contain("nothing was sent").And.Contain("Twilio:BaseUrl"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "not retried");
    }

    /// <summary>
    /// A refused login on a paced line: its sends are a pacing gap apart, too far apart to open the circuit, so each due
    /// message failed `twilio_auth_failed` in turn. Now the first fails with it and the rest wait as `queued`, the line's
    /// health saying why; one is tried again after each break, and all go once Twilio takes the login again.
    /// </summary>
    [Test]
    public async Task ARefusedLoginOnAPacedLine_ShouldFailOnlyTheFirstMessage_AndTheRestWaitUntilItIsFixed()
    {
        using var agent = Agent(new Dictionary<string, string?>
        {
            ["Lines:0:Pacing:Enabled"] = "true", ["Lines:0:Pacing:MinGap"] = "00:00:01", ["Lines:0:Pacing:Jitter"] = "00:00:00",
            ["Lines:0:Pacing:MaxPerHour"] = "1000", ["Lines:0:Pacing:MaxPerDay"] = "1000", ["Lines:0:Pacing:MaxNewConversationsPerDay"] = "1000",
            ["Lines:0:Pacing:Window:TimeZone"] = "UTC", ["Lines:0:Pacing:Window:From"] = "", ["Lines:0:Pacing:Window:To"] = "",
            ["Resilience:BreakDuration"] = "00:00:01",
        });
        using var api = agent.Api();
        _twilio.TokenRevoked = true;
        var at = DateTimeOffset.UtcNow.AddSeconds(1).ToString("O");
        var ids = new List<string>();
        for (var i = 0; i < 4; i++)
            ids.Add((await (await api.SendMessageAsync(new { content = $"sms {i}", recipientPhone = $"+1202555013{i}", scheduledAt = at }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        // Four refused attempts (the trials 1, 2 and 4 s apart): under the old rule each was a message failed.
        await Eventually.TrueAsync(() => _twilio.Requests.Count(r => r.Method == "POST") >= 4, "four refused attempts", TimeSpan.FromSeconds(30));
        var states = new List<JsonObject>();
        foreach (var id in ids)
            states.Add(await api.GetJsonAsync($"/api/messages/{id}"));
        Assert.That(states.Count(m => m.Str("status") == "failed"), Is.EqualTo(1), string.Join("\n", states.Select(m => m.ToJsonString())));
        Assert.That(states.Single(m => m.Str("status") == "failed")["error"].Str("code"), Is.EqualTo("twilio_auth_failed"));
        Assert.That(states.Count(m => m.Str("status") is "queued" or "sending"), Is.EqualTo(3), "the rest wait");
        var sms = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single()["health"]!.AsArray().Single(h => h.Str("type") == "sms")!;
        Assert.That(sms.Str("state"), Is.EqualTo("degraded"), sms.ToJsonString());
        Assert.That(sms.Str("detail"), Does.Contain("twilio refuses every send until a setting is fixed").And.Contain("twilio_auth_failed"), sms.ToJsonString());
        var waiting = states.First(m => m.Str("status") == "queued").Str("id");
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{waiting}/events"))!;
        Assert.That(events.Any(e => e.StrOrNull("detail")?.Contains("twilio_auth_failed") == true), Is.True,
            string.Join("\n", events.Select(e => e.ToJsonString())));

        _twilio.TokenRevoked = false;
        foreach (var id in ids.Where(id => states.Single(m => m.Str("id") == id).Str("status") != "failed"))
        {
            var m = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{id}")!, x => x["channelRef"] is not null || x.Str("status") == "failed",
                "handed to Twilio once the login is taken", TimeSpan.FromSeconds(30));
            Assert.That(m.Str("status"), Is.Not.EqualTo("failed"), m.ToJsonString());
            Assert.That(m.Str("channelRef"), Does.StartWith("SM"));
        }
    }

    /// <summary>
    /// A line whose Sms:From Twilio refuses (21659): every send of that line meets it. It failed each message in turn (a
    /// bulk burnt in seconds) while the line showed `ok` (probe). The first fails `invalid_sender`, the line's other
    /// messages wait, its health says why, and another line's sends through Twilio go on.
    /// </summary>
    [Test]
    public async Task ALineWhoseFromTwilioRefuses_ShouldFailOnlyItsFirstMessage_HoldThatLine_AndNotTheOthers()
    {
        using var agent = Agent(new Dictionary<string, string?>
        {
            ["Lines:0:Sms:From"] = TwilioStandIn.RefusedFrom,
            ["Lines:1:Id"] = "good", ["Lines:1:IMessage:Enabled"] = "false", ["Lines:1:Sms:Via"] = "twilio",
            ["Lines:1:Sms:From"] = TwilioStandIn.From, ["Lines:1:Pacing:Enabled"] = "false",
            ["Resilience:BreakDuration"] = "00:01:00",
        });
        using var api = agent.Api();
        var at = DateTimeOffset.UtcNow.AddSeconds(1).ToString("O");
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
            ids.Add((await (await api.SendMessageAsync(new { content = $"sms {i}", recipientPhone = $"+1202555014{i}", scheduledAt = at, lineId = "default" }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var failed = await Eventually.ValueAsync(async () =>
        {
            var all = new List<JsonObject>();
            foreach (var id in ids)
                all.Add(await api.GetJsonAsync($"/api/messages/{id}"));
            return all;
        }, all => all.Count(m => m.Str("status") == "failed") == 1 && all.Count(m => m.Str("status") == "queued" && m["notBefore"] is not null) == 2,
            "one failed, two waiting", TimeSpan.FromSeconds(30));
        var first = failed.Single(m => m.Str("status") == "failed");
        Assert.That(first["error"].Str("code"), Is.EqualTo("invalid_sender"), first.ToJsonString());
        Assert.That(first["error"].Str("message"), Does.Contain("21659").And.Contain("line 'default'"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "the others were not tried during the hold");

        var lines = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!;
        JsonNode Sms(string line) => lines.Single(l => l.Str("id") == line)["health"]!.AsArray().Single(h => h.Str("type") == "sms")!;
        Assert.That(Sms("default").Str("state"), Is.EqualTo("degraded"));
        Assert.That(Sms("default").Str("detail"), Does.Contain("refuses every send of line default").And.Contain("invalid_sender"));
        Assert.That(Sms("good").Str("state"), Is.EqualTo("ok"), Sms("good").ToJsonString());

        var other = (await (await api.SendMessageAsync(new { content = "from the good line", recipientPhone = "+12025550149", lineId = "good" }))
            .ExpectAsync(HttpStatusCode.Created));
        Assert.That(other.Str("channelRef"), Does.StartWith("SM"), other.ToJsonString());
    }

    /// <summary>
    /// An opt-out that comes while a send waits to be retried (Twilio answered 429: nothing was sent): the retry is not made
    /// and the message fails `suppressed` (review: only Messages asked again, and the retry went out).
    /// </summary>
    [Test]
    public async Task AnOptOutDuringARetrysBackoff_ShouldStopTheRetry()
    {
        using var agent = Agent(new Dictionary<string, string?> { ["Resilience:RetryBaseDelay"] = "00:00:04", ["Api:SendWaitSeconds"] = "0" });
        using var api = agent.Api();
        var response = await api.SendMessageAsync(new { content = "limited", recipientPhone = TwilioStandIn.RateLimitedTwice });
        Assert.That(response.StatusCode, Is.AnyOf(HttpStatusCode.Created, HttpStatusCode.Accepted));
        var id = (await response.Content.ReadFromJsonAsync<JsonObject>())!.Str("id");
        await Eventually.TrueAsync(() => _twilio.Requests.Count(r => r.Method == "POST") == 1, "the first attempt answered 429");

        await (await api.PostAsJsonAsync("/api/suppressions", new { address = TwilioStandIn.RateLimitedTwice })).ExpectAsync(HttpStatusCode.Created);

        var settled = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{id}")!, m => m.Str("status") is "sent" or "failed",
            "the message settled", TimeSpan.FromSeconds(30));
        Assert.That((settled.Str("status"), settled["error"]?.Str("code")), Is.EqualTo(("failed", "suppressed")), settled.ToJsonString());
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "the retry was not made");
    }

    /// <summary>
    /// The same for a send-now request still waiting for its answer: the withheld retry goes back for a second and the
    /// dispatcher fails it `suppressed`; the answer says so (review: 202 `queued`, the outcome only in a later GET).
    /// </summary>
    [Test]
    public async Task AnOptOutDuringARetrysBackoff_ShouldBeTheSendNowAnswer()
    {
        using var agent = Agent(new Dictionary<string, string?> { ["Resilience:RetryBaseDelay"] = "00:00:04", ["Api:SendWaitSeconds"] = "30" });
        using var api = agent.Api();
        var sending = api.SendMessageAsync(new { content = "limited", recipientPhone = TwilioStandIn.RateLimitedTwice });
        await Eventually.TrueAsync(() => _twilio.Requests.Count(r => r.Method == "POST") == 1, "the first attempt answered 429");

        await (await api.PostAsJsonAsync("/api/suppressions", new { address = TwilioStandIn.RateLimitedTwice })).ExpectAsync(HttpStatusCode.Created);

        var problem = await (await sending).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That((problem.Str("code"), problem["message"]!["error"]?.Str("code")), Is.EqualTo(("delivery_failed", "suppressed")), problem.ToJsonString());
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "the retry was not made");
    }

    /// <summary>
    /// The agent is stopped while a send waits to be retried (Twilio answered 429: nothing was sent): the send goes back to
    /// the queue at once, and goes out after the restart. Before, the stop waited out the backoff and, with
    /// Agent:ShutdownTimeout shorter than it, left the row `sending`: the next start failed it `interrupted` (maybe sent).
    /// </summary>
    [Test]
    public async Task AStopDuringARetrysBackoff_ShouldPutTheSendBackInTheQueue_AndTheRestartSendsIt()
    {
        using var dir = new TempDir();
        string id;
        using (var first = Agent(new Dictionary<string, string?>
               {
                   ["Resilience:RetryBaseDelay"] = "00:01:00", ["Api:SendWaitSeconds"] = "0", ["Agent:ShutdownTimeout"] = "00:00:03",
               }, dir))
        {
            using var api = first.Api();
            var response = await api.SendMessageAsync(new { content = "limited", recipientPhone = TwilioStandIn.RateLimitedTwice });
            Assert.That(response.StatusCode, Is.AnyOf(HttpStatusCode.Created, HttpStatusCode.Accepted));
            id = (await response.Content.ReadFromJsonAsync<JsonObject>())!.Str("id");
            await Eventually.TrueAsync(async () => (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{id}/events"))!
                .Any(e => e.StrOrNull("code") == "retry"), "the retry's wait began");
        }
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1), "one attempt before the stop");

        using var second = Agent(new Dictionary<string, string?> { ["Resilience:RetryBaseDelay"] = "00:00:00.100" }, dir);
        using var api2 = second.Api();
        var handed = await Eventually.ValueAsync(() => api2.GetJsonAsync($"/api/messages/{id}")!, m => m.StrOrNull("channelRef") is not null || m.Str("status") == "failed",
            "Twilio took the message after the restart", TimeSpan.FromSeconds(30));
        Assert.That(handed.Str("status"), Is.AnyOf("sending", "sent"), handed.ToJsonString());
        Assert.That(handed.Str("channelRef"), Does.StartWith("SM"), "sent through Twilio, not failed");
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(3), "429 before the stop, 429 and created after it");
        var events = (await api2.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{id}/events"))!;
        Assert.That(events.Any(e => e.Str("status") == "queued" && e.StrOrNull("detail")?.Contains("waited to be retried") == true), Is.True,
            string.Join("\n", events.Select(e => e.ToJsonString())));
    }

    [Test]
    public async Task A429PageThatIsNotTwilios_ShouldBeRetried_ThenSent()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var m = await (await api.SendMessageAsync(Sms(TwilioStandIn.RateLimitedHtmlOnce))).ExpectAsync(HttpStatusCode.Created);

        Assert.That(m.Str("channelRef"), Does.StartWith("SM"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(2));
    }

    [Test]
    public async Task A5xxAfterTheRequest_ShouldFailUnconfirmed_WithoutRetry()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.ServerError))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1));
    }

    [Test]
    public async Task ATimeoutAfterTheRequest_ShouldFailUnconfirmed_WithoutRetry()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms(TwilioStandIn.Hangs))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("unconfirmed"));
        Assert.That(_twilio.Requests.Count(r => r.Method == "POST"), Is.EqualTo(1));
    }

    [Test]
    public async Task TwilioDown_ShouldBeRetried_ThenFailAsUnreachable()
    {
        var baseUrl = _twilio.BaseUrl;
        await _twilio.DisposeAsync();
        var settings = new Dictionary<string, string?> { ["Twilio:BaseUrl"] = baseUrl.ToString(), ["Resilience:MaxRetries"] = "1" };
        using var agent = Agent(settings);
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.InternalServerError);
        Assert.That(problem["message"]!["error"].Str("code"), Is.EqualTo("twilio_unreachable"));
        _twilio = await TwilioStandIn.StartAsync();
    }

    [Test]
    public async Task MessagingServiceSid_ShouldBeSentInsteadOfFrom()
    {
        using var agent = Agent(new Dictionary<string, string?> { ["Lines:0:Sms:From"] = null, ["Lines:0:Sms:MessagingServiceSid"] = "MG0000000000000000000000000000abcd" });
        using var api = agent.Api();
        await (await api.SendMessageAsync(Sms("+12025550123"))).ExpectAsync(HttpStatusCode.Created);
        var post = _twilio.Requests.Single(r => r.Method == "POST");
        Assert.That(post.Form["MessagingServiceSid"], Is.EqualTo("MG0000000000000000000000000000abcd"));
        Assert.That(post.Form.ContainsKey("From"), Is.False);
    }

    [Test]
    public async Task Lines_ShouldShowTwilioHealth()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var line = (await api.GetFromJsonAsync<List<JsonObject>>("/api/lines"))!.Single();
        var sms = line["health"]!.AsArray().Single(h => h.Str("type") == "sms")!;
        Assert.That((sms.Str("channel"), sms.Str("state")), Is.EqualTo(("twilio", "ok")));
    }
}
