using System.Net;
using System.Net.Http.Json;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace LineAgent.Tests.Api;

/// <summary>Every 400/401/404 of POST /api/messages, and that a rejected request stores and sends nothing.</summary>
public sealed class SendValidationTests : AgentTest
{
    protected override AgentFactory CreateAgent() => new AgentFactory(settings: new Dictionary<string, string?>
        {
            ["Lines:0:Id"] = "mac-1",
            ["Lines:1:Id"] = "mac-2",
            ["Lines:2:Id"] = "paused",
            ["Lines:2:Active"] = "false",
        });

    private async Task<long> StoredMessages()
    {
        await using var c = await Agent.Services.GetRequiredService<Db>().OpenAsync();
        return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages");
    }

    private async Task AssertNothingStoredOrSent()
    {
        Assert.That(await StoredMessages(), Is.Zero, "a rejected request stored a message");
        Assert.That(Agent.OutboxFiles(), Is.Empty, "a rejected request sent something");
    }

    private static readonly TestCaseData[] SingleProblemCases =
    [
        Case(new { lineId = "mac-1", recipientPhone = "+12025550123" }, "content", "missing_content"),
        Case(new { lineId = "mac-1", content = "", recipientPhone = "+12025550123" }, "content", "missing_content"),
        Case(new { lineId = "mac-1", content = "   ", recipientPhone = "+12025550123" }, "content", "invalid_content"),
        Case(new { lineId = "mac-1", content = new string('a', 10_001), recipientPhone = "+12025550123" }, "content", "invalid_content"),
        Case(new { lineId = "mac-1", content = "a\0b", recipientPhone = "+12025550123" }, "content", "invalid_content"),
        Case(new { lineId = "mac-1", content = "hi", type = "fax", recipientPhone = "+12025550123" }, "type", "invalid_type"),
        Case(new { lineId = "mac-1", content = "hi" }, "recipientPhone", "missing_recipient"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "12" }, "recipientPhone", "invalid_recipient"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+1 555 0000 0000 000" }, "recipientPhone", "invalid_recipient"),
        // A text cannot reach an extension: it was dropped, and the message went to the main number (probe I).
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+1 202-555-0123 ext. 45" }, "recipientPhone", "invalid_recipient"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "(202) 555-0123 x45" }, "recipientPhone", "invalid_recipient"),
        Case(new { lineId = "mac-1", content = "hi", recipientEmail = "not-an-email" }, "recipientEmail", "invalid_recipient"),
        Case(new { lineId = "mac-1", content = "hi", recipientEmail = "a@b.com, c@d.com" }, "recipientEmail", "invalid_recipient"),
        Case(new { lineId = "mac-1", content = "hi", type = "sms", recipientEmail = "ana@example.com" }, "recipientPhone", "missing_recipient"),
        Case(new { lineId = "mac-1", content = "hi", type = "email", recipientPhone = "+12025550123" }, "recipientEmail", "missing_recipient"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+12025550123", scheduledAt = "2026-12-01T09:00:00" }, "scheduledAt", "invalid_schedule"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+12025550123", scheduledAt = "tomorrow" }, "scheduledAt", "invalid_schedule"),
        // The instant that marks a follow-up waiting for its previous step (a probe: accepted, then shown as one).
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+12025550123", scheduledAt = "9999-12-31T23:59:59.999Z" }, "scheduledAt", "invalid_schedule"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+12025550123", scheduledAt = "2026-13-45T09:00:00Z" }, "scheduledAt", "invalid_schedule"),
        Case(new { lineId = "mac-1", content = "hi", recipientPhone = "+12025550123", scheduledAt = "2026-12-01T09:00", timeZone = "Mars/Olympus" }, "timeZone", "invalid_schedule"),
        Case(new { content = "hi", recipientPhone = "+12025550123" }, "lineId", "missing_line"),
        Case(new { lineId = "paused", content = "hi", recipientPhone = "+12025550123" }, "lineId", "line_inactive"),
    ];

    private static int _case;

    private static TestCaseData Case(object body, string field, string code) =>
        new TestCaseData(body, field, code).SetArgDisplayNames($"{++_case:00}", field, code);

    [TestCaseSource(nameof(SingleProblemCases))]
    public async Task Send_ShouldReturn400NamingTheField_WhenOneFieldIsBad(object body, string field, string code)
    {
        var problem = await (await Client.SendMessageAsync(body)).ExpectAsync(HttpStatusCode.BadRequest);

        Assert.That(problem.Str("code"), Is.EqualTo(code));
        Assert.That(problem.ProblemFields(), Is.EqualTo(new[] { field }));
        Assert.That(problem["errors"]![field], Is.Not.Null, "the RFC 9457 errors map names the field too");
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task Send_ShouldNameEveryBadField_InOneResponse()
    {
        var problem = await (await Client.SendMessageAsync(new
        {
            content = "",
            type = "pigeon",
            recipientPhone = "abc",
            recipientEmail = "nope",
            scheduledAt = "soon",
        })).ExpectAsync(HttpStatusCode.BadRequest);

        Assert.That(problem.Str("code"), Is.EqualTo("validation_failed"));
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(new[] { "content", "type", "recipientPhone", "recipientEmail", "scheduledAt", "lineId" }));
        Assert.That(problem.Str("detail"), Does.Contain("abc").And.Contain("nope").And.Contain("soon"));
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task Send_ShouldReturn400_WhenBodyIsNotJsonOfTheRightShape()
    {
        var response = await Client.PostAsync("/api/messages", new StringContent("{\"content\": 5}", System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("code"), Is.EqualTo("invalid_body"));
        Assert.That(problem.Str("detail"), Does.Contain("content"));

        response = await Client.PostAsync("/api/messages", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.That((await response.ExpectAsync(HttpStatusCode.BadRequest)).Str("code"), Is.EqualTo("invalid_body"));
        await AssertNothingStoredOrSent();
    }

    [TestCase("""{"content":"x","recipientPhone":"+12025550123","sheduledAt":"2030-01-01T09:00:00Z"}""", "sheduledAt", "unknown_field", "Did you mean 'scheduledAt'?")]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","scheduled_at":"2030-01-01T09:00:00Z"}""", "scheduled_at", "unknown_field", "Did you mean 'scheduledAt'?")]
    [TestCase("""{"content":"x","phone":"+12025550123"}""", "phone", "unknown_field", "'phone'")]
    [TestCase("""{"content":"first","content":"second","recipientPhone":"+12025550123"}""", "content", "duplicate_field", "more than once")]
    [TestCase("""{"content":5,"recipientPhone":"+12025550123"}""", "content", "invalid_type", "must be text")]
    [TestCase("""{"content":"x","recipientPhone":["+12025550123"]}""", "recipientPhone", "invalid_type", "must be text")]
    [TestCase("""{"content":"a\ud800b","recipientPhone":"+12025550123"}""", "content", "invalid_text", "Unicode")]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123",}""", "body", "invalid_json", "line 1")]
    [TestCase("""null""", "body", "missing_body", "JSON body")]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","a\nb":1}""", "a\nb", "unknown_field", "Unknown field")]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","sheduled at":"2030-01-01T09:00:00Z"}""", "sheduled at", "unknown_field", "Did you mean 'scheduledAt'?")]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","stopOnReply":"yes"}""", "stopOnReply", "invalid_type", "must be true or false")]
    public async Task Send_ShouldName_AnUnknownDuplicateOrMistypedField_AndStoreNothing(string json, string field, string code, string hint)
    {
        var response = await Client.PostAsync("/api/messages", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("code"), Is.EqualTo("invalid_body"));
        Assert.That(problem["problems"]![0].Str("field"), Is.EqualTo(field), problem.ToJsonString());
        Assert.That(problem["problems"]![0].Str("code"), Is.EqualTo(code), problem.ToJsonString());
        Assert.That(problem.Str("detail"), Does.Contain(hint).And.Not.Contain("System.").And.Not.Contain("LineAgent."), problem.ToJsonString());
        await AssertNothingStoredOrSent();
    }

    /// <summary>
    /// Every problem of shape in the one 400, at any depth: the JSON reader stops at the first, so a body with three
    /// mistakes took three round trips (found by a new-user pass). Then the problems of value of the well-formed rest: this
    /// agent has two lines, and none of these bodies says which.
    /// </summary>
    [TestCase("""{"content":5,"recipientPhone":12025550123,"scheduledAt":true}""",
        new[] { "content:invalid_type", "recipientPhone:invalid_type", "scheduledAt:invalid_type", "lineId:missing_line" })]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","foo":1,"sheduledAt":"2030-01-01T09:00:00Z"}""",
        new[] { "foo:unknown_field", "sheduledAt:unknown_field", "lineId:missing_line" })]
    [TestCase("""{"content":"x","content":"y","content":"z","recipientPhone":"+12025550123","stopOnReply":"yes"}""",
        new[] { "content:duplicate_field", "stopOnReply:invalid_type", "lineId:missing_line" })]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","followUps":[{"after":"P1D","content":3,"afer":1}],"recipientWindow":{"from":9,"x":1}}""",
        new[] { "followUps[0].content:invalid_type", "followUps[0].afer:unknown_field", "recipientWindow.from:invalid_type", "recipientWindow.x:unknown_field",
            "lineId:missing_line" })]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","lineId":"mac-1","followUps":[{"after":"P1D","content":"x","bogus":1},{"after":"P1M","content":"y"}]}""",
        new[] { "followUps[0].bogus:unknown_field", "followUps[1].after:invalid_duration" },
        Description = "probe: the second follow-up's problem went unsaid behind the first's unknown field")]
    [TestCase("""{"content":"x","recipientPhone":"+12025550123","lineId":"mac-1","followUps":[{"after":5,"content":"x"},{"after":"P1M","content":"y"}]}""",
        new[] { "followUps[0].after:invalid_type", "followUps[1].after:invalid_duration" })]
    public async Task Send_ShouldNameEveryProblemOfShape_InTheOne400(string json, string[] expected)
    {
        var response = await Client.PostAsync("/api/messages", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("code"), Is.EqualTo("invalid_body"));
        Assert.That(problem["problems"]!.AsArray().Select(p => $"{p.Str("field")}:{p.Str("code")}"), Is.EqualTo(expected), problem.ToJsonString());
        Assert.That(problem.Str("detail"), Does.Not.Contain("System.").And.Not.Contain("LineAgent."), problem.ToJsonString());
        await AssertNothingStoredOrSent();
    }

    /// <summary>
    /// The other routes with a JSON body name every problem too (API.md: "Validation errors list every bad field"): one
    /// field of the wrong type or unknown hid all the others (probe).
    /// </summary>
    [TestCase("/api/leads", """{"firstName":5,"phone":"abc","email":"@@"}""", new[] { "firstName", "phone", "email" })]
    [TestCase("/api/leads", """{"email":5}""", new[] { "email" }, Description = "not also 'a lead needs a phone or an email' (review)")]
    [TestCase("/api/suppressions", """{"address":"nope","bogus":true}""", new[] { "bogus", "address" })]
    [TestCase("/api/webhooks", """{"url":"ftp://example.com/x","events":["nope"],"secret":5}""", new[] { "secret", "url", "events" })]
    public async Task OtherRoutes_ShouldNameEveryBadField_BesideOneOfTheWrongShape(string route, string json, string[] fields)
    {
        var response = await Client.PostAsync(route, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(fields), problem.ToJsonString());
        var list = await Client.GetAsync(route);
        Assert.That((await list.ExpectAsync(HttpStatusCode.OK))["items"]!.AsArray(), Is.Empty, "nothing was stored");
    }

    [Test]
    public async Task PatchLead_ShouldNameEveryBadField_BesideOneOfTheWrongShape()
    {
        var lead = await (await Client.PostAsJsonAsync("/api/leads", new { phone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
        var response = await Client.PatchAsync($"/api/leads/{lead.Str("id")}",
            new StringContent("""{"lastName":[1],"email":"@@"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.That((await response.ExpectAsync(HttpStatusCode.BadRequest)).ProblemFields(), Is.EquivalentTo(new[] { "lastName", "email" }));
    }

    /// <summary>
    /// A body with a problem of shape and problems of value: one 400 names them all (review: only `content` was named, and the
    /// rest came one round trip at a time). The fields well formed are checked as without the others.
    /// </summary>
    [Test]
    public async Task Send_ShouldNameProblemsOfValue_BesideProblemsOfShape()
    {
        var response = await Client.PostAsync("/api/messages", new StringContent(
            """{"content":123,"type":"imesage","recipientPhone":"abc","scheduledAt":"tomorrow","lineId":"nope"}""",
            System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("code"), Is.EqualTo("invalid_body"));
        Assert.That(problem["problems"]!.AsArray().Select(p => $"{p.Str("field")}:{p.Str("code")}"), Is.EquivalentTo(new[]
        {
            "content:invalid_type", "type:invalid_type", "recipientPhone:invalid_recipient", "scheduledAt:invalid_schedule", "lineId:line_not_found",
        }), problem.ToJsonString());
        await AssertNothingStoredOrSent();
    }

    /// <summary>
    /// A problem that follows only from a field left out for its shape is not named (review: "give recipientPhone or
    /// recipientEmail" beside a mistyped leadId; "give content and/or scheduledAt" beside a mistyped scheduledAt).
    /// </summary>
    [Test]
    public async Task AFieldLeftOutForItsShape_ShouldNotBringProblemsThatFollowFromItsAbsence()
    {
        var send = await (await Client.PostAsync("/api/messages", new StringContent("""{"content":"hi","leadId":42,"lineId":"mac-1"}""",
            System.Text.Encoding.UTF8, "application/json"))).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(send.ProblemFields(), Is.EqualTo(new[] { "leadId" }), send.ToJsonString());
        var zone = await (await Client.PostAsync("/api/messages", new StringContent(
            """{"content":"hi","recipientPhone":"+12025550123","lineId":"mac-1","scheduledAt":"2030-01-01T09:00","timeZone":1}""",
            System.Text.Encoding.UTF8, "application/json"))).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(zone.ProblemFields(), Is.EqualTo(new[] { "timeZone" }), zone.ToJsonString());

        var scheduled = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "later", recipientPhone = "+12025550123", scheduledAt = "2030-01-01T09:00:00Z" }))
            .ExpectAsync(HttpStatusCode.Created);
        var edit = await (await Client.PatchAsync($"/api/messages/{scheduled.Str("id")}", new StringContent("""{"scheduledAt":20300101}""",
            System.Text.Encoding.UTF8, "application/json"))).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(edit.ProblemFields(), Is.EqualTo(new[] { "scheduledAt" }), edit.ToJsonString());
    }

    /// <summary>The same for an edit (review: `{"content":"","scheduledAt":"bad","foo":1}` named only `foo`).</summary>
    [Test]
    public async Task Edit_ShouldNameProblemsOfValue_BesideAnUnknownField()
    {
        var scheduled = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "later", recipientPhone = "+12025550123", scheduledAt = "2030-01-01T09:00:00Z" }))
            .ExpectAsync(HttpStatusCode.Created);
        var response = await Client.PatchAsync($"/api/messages/{scheduled.Str("id")}", new StringContent(
            """{"content":"","scheduledAt":"bad","foo":1}""", System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(new[] { "foo", "content", "scheduledAt" }), problem.ToJsonString());
        Assert.That((await Client.GetJsonAsync($"/api/messages/{scheduled.Str("id")}")).Str("content"), Is.EqualTo("later"), "nothing changed");
    }

    [TestCase("\u200b\ufeff\u200d", "content", "no visible character")]
    [TestCase("Hi\u001b[31m red", "content", "control character")]
    [TestCase("Ring\u0007", "content", "control character")]
    [TestCase("\u000b\u000c", "content", "only whitespace")]
    public async Task ContentThatShowsNothingOrHoldsControlCharacters_ShouldBe400(string content, string field, string expected)
    {
        var problem = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content, recipientPhone = "+12025550123" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EqualTo(new[] { field }));
        Assert.That(problem.Str("detail"), Does.Contain(expected));
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task ContentWithLineBreaksTabsAndEmoji_AndANameWithALineBreakInside_ShouldBeTold()
    {
        var ok = await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "Line one\r\nLine two\t👋🏽 \u200d\vsoft break\u2028line separator\fpage", recipientPhone = "+12025550123" });
        Assert.That(ok.StatusCode, Is.EqualTo(HttpStatusCode.Created), await ok.Content.ReadAsStringAsync());
        var name = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "x", recipientPhone = "+12025550123", recipientName = "Ana\nRuiz" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(name.ProblemFields(), Is.EqualTo(new[] { "recipientName" }));
    }

    [TestCase("/api/messages", "POST", """{"lineId":"mac-1","content":"x","recipientPhone":"+12025550123","batchId":"a/b"}""", "batchId", "without /")]
    [TestCase("/api/suppressions", "POST", """{"address":5}""", "address", "must be text")]
    [TestCase("/api/lines/mac-1", "PATCH", """{"active":"false"}""", "active", "must be true or false")]
    [TestCase("/api/messages/bulk", "POST", """{"leadFilter":{"tag":5},"content":"Hi"}""", "leadFilter.tag", "must be text")]
    public async Task AWrongTypeInARecordBody_OrAnUnaddressableBatchId_ShouldSayWhatTheFieldTakes(string path, string method, string json, string field, string expected)
    {
        // Records bound through their constructor: System.Text.Json names the record, not the field's type.
        var response = await Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") });
        var problem = await response.ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem["problems"]![0].Str("field"), Is.EqualTo(field));
        Assert.That(problem.Str("detail"), Does.Contain(expected).And.Not.Contain("an object"), problem.ToJsonString());
    }

    [Test]
    public async Task TwoIdempotencyKeys_AsTwoHeadersOrJoinedInOne_ShouldBe400()
    {
        // HttpClient over the network (and proxies) join two values into one line "a, b"; the test server keeps two.
        foreach (var keys in new[] { new[] { "a", "b" }, ["a, b"] })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/messages") { Content = JsonContent.Create(new { lineId = "mac-1", content = "x", recipientPhone = "+12025550123" }) };
            request.Headers.TryAddWithoutValidation("Idempotency-Key", keys);
            var problem = await (await Client.SendAsync(request)).ExpectAsync(HttpStatusCode.BadRequest);
            Assert.That(problem.Str("code"), Is.EqualTo("invalid_idempotency_key"), string.Join("|", keys));
        }
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task ABadTimeZone_ShouldBeNamedUnderTimeZone_AndABadScheduledAtToo()
    {
        var both = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "x", recipientPhone = "+12025550123", scheduledAt = "yesterday", timeZone = "Mars/Base" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(both.ProblemFields(), Is.EquivalentTo(new[] { "timeZone", "scheduledAt" }));
        var zoneOnly = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "x", recipientPhone = "+12025550123", scheduledAt = "2030-03-15T09:00:00", timeZone = "America/NewYork" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(zoneOnly.ProblemFields(), Is.EqualTo(new[] { "timeZone" }), "a wall-clock time waits for its zone; only the zone is wrong");
        Assert.That(zoneOnly.Str("detail"), Does.Contain("America/NewYork"));
        // An ISO-shaped time that is no date, beside a bad zone: both named (probe: only the zone).
        var badDate = await (await Client.PostAsJsonAsync("/api/messages", new { lineId = "mac-1", content = "x", recipientPhone = "+12025550123", scheduledAt = "2031-13-45T10:00", timeZone = "Mars/Base" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(badDate.ProblemFields(), Is.EquivalentTo(new[] { "timeZone", "scheduledAt" }));
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task Send_ShouldReturn404_WhenLineIsUnknown()
    {
        var problem = await (await Client.SendMessageAsync(new { lineId = "nope", content = "hi", recipientPhone = "+12025550123" }))
            .ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(problem.Str("code"), Is.EqualTo("line_not_found"));
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task Send_ShouldReturn404_WhenLeadIsUnknown()
    {
        var problem = await (await Client.SendMessageAsync(new { lineId = "mac-1", content = "hi", leadId = "lead_missing" }))
            .ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(problem.Str("code"), Is.EqualTo("lead_not_found"));
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task Send_ShouldListUnknownLineAmongOtherProblems_WhenThereAreSeveral()
    {
        var problem = await (await Client.SendMessageAsync(new { lineId = "nope", content = "", recipientPhone = "+12025550123" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Is.EquivalentTo(new[] { "missing_content", "line_not_found" }));
    }

    /// <summary>Review: with an unknown lead too, the unknown line was dropped (a 404 lead_not_found alone).</summary>
    [Test]
    public async Task Send_ShouldNameAnUnknownLineAndAnUnknownLead_Both()
    {
        var problem = await (await Client.SendMessageAsync(new { lineId = "nope", content = "hi", leadId = "lead_missing" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Is.EquivalentTo(new[] { "line_not_found", "lead_not_found" }));
        await AssertNothingStoredOrSent();
    }

    /// <summary>Review: a bulk's unknown line was dropped from a 400 about other fields.</summary>
    [Test]
    public async Task Bulk_ShouldListAnUnknownLineAmongOtherProblems()
    {
        var problem = await (await Client.PostAsJsonAsync("/api/messages/bulk", new { lineId = "nope", content = "", leadIds = new[] { "lead_x" } }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Does.Contain("line_not_found").And.Contain("missing_content"), problem.ToJsonString());
        await AssertNothingStoredOrSent();
    }

    [Test]
    public async Task Send_ShouldAcceptTenThousandCharacters_CountingEmojiAsOne()
    {
        var content = string.Concat(Enumerable.Repeat("😀", 10_000));
        var message = await (await Client.SendMessageAsync(new { lineId = "mac-1", content, recipientPhone = "+12025550123" }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(message.Str("content"), Is.EqualTo(content));
    }

    [TestCase("(202) 555-0123", "+12025550123")]
    [TestCase("202-555-0123", "+12025550123")]
    [TestCase("+44 20 7946 0958", "+442079460958")]
    public async Task Send_ShouldStoreE164_WhenPhoneIsNationalOrFormatted(string input, string e164)
    {
        var message = await (await Client.SendMessageAsync(new { lineId = "mac-1", content = "hi", recipientPhone = input }))
            .ExpectAsync(HttpStatusCode.Created);
        Assert.That(message.Str("recipientPhone"), Is.EqualTo(e164));
    }

    [Test]
    public async Task Api_ShouldReturn401_WithoutOrWithWrongToken()
    {
        using var anonymous = Agent.CreateClient();
        var missing = await (await anonymous.PostAsJsonAsync("/api/messages", new { content = "hi", lineId = "mac-1", recipientPhone = "+12025550123" }))
            .ExpectAsync(HttpStatusCode.Unauthorized);
        Assert.That(missing.Str("code"), Is.EqualTo("unauthorized"));

        anonymous.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        foreach (var url in new[] { "/api/messages", "/api/status", "/api/lines", "/api/messages/export" })
            Assert.That((await anonymous.GetAsync(url)).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), url);
        await AssertNothingStoredOrSent();

        var health = await anonymous.GetAsync("/healthz");
        Assert.That(await health.Content.ReadAsStringAsync(), Is.EqualTo("ok"));
    }

    [Test]
    public async Task Send_ShouldTakeTheOnlyActiveLine_WhenLineIdIsOmitted()
    {
        await Client.PatchAsJsonAsync("/api/lines/mac-2", new { active = false });
        var message = await (await Client.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
        Assert.That(message.Str("lineId"), Is.EqualTo("mac-1"));

        await Client.PatchAsJsonAsync("/api/lines/mac-1", new { active = false });
        var problem = await (await Client.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("code"), Is.EqualTo("line_inactive"));
        Assert.That(problem.Str("detail"), Does.Contain("PATCH /api/lines/").And.Contain("mac-1").And.Contain("mac-2"), "how to resume one, and which");
    }
}
