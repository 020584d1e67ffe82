using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Scheduling;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Scheduling;

/// <summary>
/// The recipient's own hours: the zone from the number (libphonenumber), else the lead's fields.timeZone, else the
/// line's. Dry-run outbox with FakeTimeProvider; the line's pacing does not apply to the outbox (a window given on the
/// send still does).
/// </summary>
public sealed class RecipientWindowTests
{
    // Thursday 10 December 2026, 12:00 UTC: 23:00 in Sydney (AEDT, UTC+11), 07:00 in New York (EST).
    private static readonly DateTimeOffset Noon = new(2026, 12, 10, 12, 0, 0, TimeSpan.Zero);
    private static readonly object Window = new { from = "09:00", to = "20:00" };

    private static AgentFactory Agent(IDictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?> { ["Lines:0:Id"] = "default", ["Lines:0:Pacing:Window:TimeZone"] = "Asia/Tokyo" };
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
            settings[k] = v;
        return new AgentFactory(time: new FakeTimeProvider(Noon), settings: settings);
    }

    private static DateTimeOffset HandedAt(AgentFactory agent, string id) =>
        DateTimeOffset.Parse(JsonNode.Parse(File.ReadAllText(Directory.GetFiles(agent.OutboxDir, id + ".*.json").Single())).Str("handedAt"));

    [Test]
    public async Task SydneyNumber_DueAt2300Sydney_ShouldWaitUntil0900Sydney_2200Utc()
    {
        using var agent = Agent();
        using var api = agent.Api();

        var held = await (await api.SendMessageAsync(new { content = "G'day", recipientPhone = "+61 2 9123 4567", recipientWindow = Window }))
            .ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(held.Str("status"), Is.EqualTo("queued"));
        Assert.That(DateTimeOffset.Parse(held.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero)));
        Assert.That(held.Str("recipientTimeZone"), Is.EqualTo("Australia/Sydney"));
        Assert.That(held.Str("recipientTimeZoneSource"), Is.EqualTo("number"));
        Assert.That(held["recipientWindow"].Str("from"), Is.EqualTo("09:00"));
        var events = (await api.GetFromJsonAsync<List<JsonObject>>($"/api/messages/{held.Str("id")}/events"))!;
        Assert.That(events.Last().Str("detail"), Does.Contain("recipient's hours 09:00-20:00 Australia/Sydney"));

        await agent.AdvanceToAsync(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero) - TimeSpan.FromSeconds(1));
        Assert.That(agent.OutboxFileCount(held.Str("id")), Is.Zero);
        await agent.AdvanceToAsync(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero));
        await Eventually.TrueAsync(() => agent.OutboxFileCount(held.Str("id")) == 1, "sent at 09:00 in Sydney");
        Assert.That(HandedAt(agent, held.Str("id")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero)));
    }

    /// <summary>
    /// A retry is the same message: it keeps its recipient's hours and zone (a probe found a retry sent at once, outside
    /// them: the retry's draft carried neither).
    /// </summary>
    [Test]
    public async Task ARetry_ShouldKeepTheRecipientsHoursAndZone()
    {
        using var agent = Agent();
        using var api = agent.Api();
        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+61291234567", reason = "for the test" })).ExpectAsync(HttpStatusCode.Created);
        var held = await (await api.SendMessageAsync(new { content = "G'day", recipientPhone = "+61 2 9123 4567", recipientWindow = Window }))
            .ExpectAsync(HttpStatusCode.Accepted);
        await agent.AdvanceToAsync(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero));
        var failed = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{held.Str("id")}")!, m => m.Str("status") == "failed", "failed: suppressed");
        Assert.That(failed["error"].Str("code"), Is.EqualTo("suppressed"));
        Assert.That((await api.DeleteAsync("/api/suppressions/%2B61291234567")).IsSuccessStatusCode, Is.True);

        // 21:00 in Sydney: outside 09:00-20:00 there.
        await agent.AdvanceToAsync(new DateTimeOffset(2026, 12, 11, 10, 0, 0, TimeSpan.Zero));
        var retry = await (await api.PostAsync($"/api/messages/{held.Str("id")}/retry", null)).ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(retry.Str("status"), Is.EqualTo("queued"));
        Assert.That(DateTimeOffset.Parse(retry.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 11, 22, 0, 0, TimeSpan.Zero)), "09:00 in Sydney");
        Assert.That((retry.Str("recipientTimeZone"), retry.Str("recipientTimeZoneSource"), retry["recipientWindow"].Str("from")),
            Is.EqualTo(("Australia/Sydney", "number", "09:00")));
        Assert.That(agent.OutboxFileCount(retry.Str("id")), Is.Zero);
    }

    /// <summary>
    /// On a paced line whose window is 08:00-21:00 UTC, Sydney's 09:00-10:00 (22:00-23:00 UTC) never comes: such a send was
    /// accepted and held again and again. Now a 400 on the send, a rejected lead in a bulk (and its preview).
    /// </summary>
    [Test]
    public async Task RecipientHoursThatNeverMeetTheLinesWindow_ShouldBeRefused_AndHoursThatDoShouldNot()
    {
        using var agent = Agent(new Dictionary<string, string?>
        {
            ["Agent:DryRunPacing"] = "true", ["Lines:0:Pacing:Window:From"] = "08:00", ["Lines:0:Pacing:Window:To"] = "21:00",
            ["Lines:0:Pacing:Window:TimeZone"] = "UTC",
        });
        using var api = agent.Api();
        var never = new { from = "09:00", to = "10:00" };

        var refused = await (await api.SendMessageAsync(new { content = "never", recipientPhone = "+61 2 9123 4567", recipientWindow = never }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That((refused.ProblemFields(), refused.ProblemCodes()), Is.EqualTo((new[] { "recipientWindow" }, new[] { "window_never_open" })));
        Assert.That(refused.Str("detail"), Does.Contain("09:00-10:00 (Australia/Sydney)").And.Contain("08:00-21:00 (UTC)"));
        Assert.That((await api.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty, "nothing stored");

        // 19:00-20:00 in Sydney is 08:00-09:00 UTC: inside the line's window.
        var meets = await (await api.SendMessageAsync(new { content = "ok", recipientPhone = "+61 2 9123 4567", recipientWindow = new { from = "19:00", to = "20:00" } }))
            .ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(DateTimeOffset.Parse(meets.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 11, 8, 0, 0, TimeSpan.Zero)));

        (await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Syd", phone = "+61291234500", tags = new[] { "au" } })).ExpectAsync(HttpStatusCode.Created)).Str("id");
        var body = new { leadFilter = new { tag = "au" }, content = "Hi {{firstName}}", recipientWindow = never };
        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", body)).ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(bulk["messages"]![0]!["error"].Str("code"), Is.EqualTo("window_never_open"));
        var preview = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", body)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(preview["messages"]![0]!["error"].Str("code"), Is.EqualTo("window_never_open"));
    }

    /// <summary>
    /// Accepted in December for July, when Sydney's 18:00-18:30 (AEST) is 08:00-08:30 UTC, inside 08:00-21:00 UTC. Moved to
    /// now (AEDT: 07:00-07:30 UTC) it could never go: the edit is refused. A message that gets there anyway (the line's
    /// window narrowed while it waited) is failed with the reason when it comes up, not held for ever.
    /// </summary>
    [Test]
    public async Task AnEditOrAWindowChangeThatLeavesNoSendTime_ShouldBeRefused_OrFailTheMessage()
    {
        var paced = new Dictionary<string, string?>
        {
            ["Agent:DryRunPacing"] = "true", ["Lines:0:Pacing:Window:From"] = "08:00", ["Lines:0:Pacing:Window:To"] = "21:00",
            ["Lines:0:Pacing:Window:TimeZone"] = "UTC",
        };
        using var dir = new TempDir();
        var time = new FakeTimeProvider(Noon);
        string late;
        using (var agent = new AgentFactory(dir, time, new Dictionary<string, string?>(paced) { ["Lines:0:Id"] = "default", ["Lines:0:Pacing:Window:To"] = "23:30" }))
        using (var api = agent.Api())
        {
            // Sydney 09:00-10:00 is 22:00-23:00 UTC: inside this line's 08:00-23:30.
            late = (await (await api.SendMessageAsync(new { content = "late", recipientPhone = "+61291234567", recipientWindow = new { from = "09:00", to = "10:00" } }))
                .ExpectAsync(HttpStatusCode.Accepted)).Str("id");
        }

        // The line's window narrowed to 08:00-21:00 while they waited.
        using var narrowed = new AgentFactory(dir, time, new Dictionary<string, string?>(paced) { ["Lines:0:Id"] = "default" });
        using var client = narrowed.Api();
        var july2 = await (await client.SendMessageAsync(new { content = "july", recipientPhone = "+61291234567", scheduledAt = "2027-07-01T08:05:00Z",
            recipientWindow = new { from = "18:00", to = "18:30" } })).ExpectAsync(HttpStatusCode.Created);
        var refused = await (await client.PatchAsJsonAsync($"/api/messages/{july2.Str("id")}", new { scheduledAt = "2026-12-10T12:00:05Z" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That((refused.ProblemFields(), refused.ProblemCodes()), Is.EqualTo((new[] { "scheduledAt" }, new[] { "window_never_open" })));
        Assert.That((await client.GetJsonAsync($"/api/messages/{july2.Str("id")}")).Str("scheduledAt"), Does.StartWith("2027-07-01"), "unchanged");

        await narrowed.AdvanceToAsync(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero));
        await Eventually.TrueAsync(async () => (await client.GetJsonAsync($"/api/messages/{late}")).Str("status") == "failed", "the late one failed");
        var failed = await client.GetJsonAsync($"/api/messages/{late}");
        Assert.That(failed["error"].Str("code"), Is.EqualTo("window_never_open"));
        Assert.That(failed["error"].Str("message"), Does.Contain("09:00-10:00 (Australia/Sydney)"));
        Assert.That(narrowed.OutboxFileCount(late), Is.Zero, "nothing was handed over");
    }

    [Test]
    public async Task NewYorkNumber_ShouldUseNewYork()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var held = await (await api.SendMessageAsync(new { content = "Morning", recipientPhone = "+1 212 555 0142", recipientWindow = Window }))
            .ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(held.Str("recipientTimeZone"), Is.EqualTo("America/New_York"));
        Assert.That(held.Str("recipientTimeZoneSource"), Is.EqualTo("number"));
        Assert.That(DateTimeOffset.Parse(held.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 14, 0, 0, TimeSpan.Zero)), "09:00 EST");
    }

    [Test]
    public async Task NumberWhoseAreaSpansZones_ShouldUseTheLeadsTimeZone_ElseTheLines()
    {
        Assert.That(RecipientZones.FromPhone("+12085550142"), Is.Null, "+1 208 (Idaho) spans Boise and Los Angeles");
        using var agent = Agent();
        using var api = agent.Api();
        var withZone = (await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Ida", phone = "+12085550142", fields = new { timeZone = "America/Chicago" } }))
            .ExpectAsync(HttpStatusCode.Created)).Str("id");

        var byLead = await (await api.SendMessageAsync(new { content = "Hi Ida", leadId = withZone, recipientWindow = Window })).ExpectAsync(HttpStatusCode.Accepted);
        var byLine = await (await api.SendMessageAsync(new { content = "Hi", recipientPhone = "+12085550143", recipientWindow = Window })).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That((byLead.Str("recipientTimeZone"), byLead.Str("recipientTimeZoneSource")), Is.EqualTo(("America/Chicago", "lead")));
        Assert.That(DateTimeOffset.Parse(byLead.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 15, 0, 0, TimeSpan.Zero)), "09:00 CST");
        Assert.That((byLine.Str("recipientTimeZone"), byLine.Str("recipientTimeZoneSource")), Is.EqualTo(("Asia/Tokyo", "line")));
        Assert.That(DateTimeOffset.Parse(byLine.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 11, 0, 0, 0, TimeSpan.Zero)), "21:00 in Tokyo: 09:00 the next day");

        // A zone no one can find was stored, and the lead's hours were silently the line's.
        var bad = await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Ivy", phone = "+12085550144", fields = new { tz = "Invalid/Zone" } }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That((bad.ProblemFields(), bad.ProblemCodes()), Is.EqualTo((new[] { "fields.tz" }, new[] { "invalid_time_zone" })));
        var patch = await (await api.PatchAsJsonAsync($"/api/leads/{withZone}", new { fields = new { timeZone = "posixrules" } })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(patch.ProblemCodes(), Is.EqualTo(new[] { "invalid_time_zone" }));
        var import = await (await api.PostAsync("/api/leads/import", new StringContent("First Name,Phone,Time Zone\nJo,+12085550145,Mars/Base\n",
            System.Text.Encoding.UTF8, "text/csv"))).ExpectAsync(HttpStatusCode.OK);
        Assert.That(import["skippedRows"]![0].Str("reason"), Does.Contain("not an IANA time zone"));
    }

    [Test]
    public async Task RecipientWindow_OnABulk_ShouldHoldEachLeadInItsOwnZone_AndLetTheOthersGo()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var syd = (await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Syd", phone = "+61291234567" })).ExpectAsync(HttpStatusCode.Created)).Str("id");
        var ber = (await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Ben", phone = "+4930123456" })).ExpectAsync(HttpStatusCode.Created)).Str("id");

        var bulk = await (await api.PostAsJsonAsync("/api/messages/bulk", new { leadIds = new[] { syd, ber }, content = "Hi {{firstName}}", recipientWindow = Window }))
            .ExpectAsync(HttpStatusCode.Accepted);
        var ids = bulk["messages"]!.AsArray().ToDictionary(m => m.Str("leadId"), m => m.Str("messageId"));

        await Eventually.TrueAsync(() => agent.OutboxFileCount(ids[ber]) == 1, "Berlin (13:00 there) goes at once");
        var sydney = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{ids[syd]}")!, m => m.StrOrNull("notBefore") is not null, "Sydney held");
        Assert.That(DateTimeOffset.Parse(sydney.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 22, 0, 0, TimeSpan.Zero)));
    }

    [Test]
    public async Task LinesRecipientWindow_ShouldApplyWhileTheLineIsPaced_AndASendsOwnWindowWins()
    {
        using var agent = Agent(new Dictionary<string, string?>
        {
            ["Agent:DryRunPacing"] = "true", ["Lines:0:Pacing:Window:From"] = "", ["Lines:0:Pacing:Window:To"] = "",
            ["Lines:0:Pacing:MinGap"] = "00:00:00", ["Lines:0:Pacing:Jitter"] = "00:00:00",
            ["Lines:0:Pacing:RecipientWindow:From"] = "10:00", ["Lines:0:Pacing:RecipientWindow:To"] = "18:00",
        });
        using var api = agent.Api();
        var byLine = await (await api.SendMessageAsync(new { content = "a", recipientPhone = "+12125550142" })).ExpectAsync(HttpStatusCode.Accepted);
        var own = await (await api.SendMessageAsync(new { content = "b", recipientPhone = "+12125550143", recipientWindow = new { from = "06:00", to = "08:00" } }))
            .ExpectAsync(HttpStatusCode.Created);

        Assert.That(DateTimeOffset.Parse(byLine.Str("notBefore")), Is.EqualTo(new DateTimeOffset(2026, 12, 10, 15, 0, 0, TimeSpan.Zero)), "10:00 EST");
        Assert.That(byLine.Str("recipientTimeZoneSource"), Is.EqualTo("number"));
        Assert.That(own.Str("status"), Is.EqualTo("sent"), "07:00 in New York is inside its own 06:00-08:00");
    }

    [Test]
    public async Task RecipientWindow_ShouldBeRefused_WhenItIsNotTwoTimes()
    {
        using var agent = Agent();
        using var api = agent.Api();
        var problem = await (await api.SendMessageAsync(new { content = "x", recipientPhone = "+12125550142", recipientWindow = new { from = "9am", to = "20:00" } }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Does.Contain("invalid_window"));
    }
}
