using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Batches;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace LineAgent.Tests.Batches;

/// <summary>
/// Every test twice: as the agent plans a bulk of a few leads (all of it, then stored), and with parts of two leads, as it
/// plans a large one (the writer stores each part while the next is planned, in one transaction).
/// </summary>
[TestFixture(0)]
[TestFixture(2)]
public sealed class BulkTests(int leadsPerPart) : AgentTest
{
    [SetUp]
    public void PlanInParts()
    {
        if (leadsPerPart > 0)
            Agent.Services.GetRequiredService<BulkSend>().LeadsPerPart = leadsPerPart;
    }

    private async Task<string> Lead(object lead) => (await (await Client.PostAsJsonAsync("/api/leads", lead)).ExpectAsync(HttpStatusCode.Created)).Str("id");

    private const string Template = "Hi {{firstName|there}}, your {{fields.plan|standard}} plan at {{company}} renews soon.";

    [Test]
    public async Task Bulk_ShouldSendEachLeadItsOwnText_AndFailOnlyTheLeadsThatCannotBeSent()
    {
        var ana = await Lead(new { firstName = "Ana", phone = "+12025550101", company = "Acme", fields = new { plan = "gold" } });
        var bob = await Lead(new { phone = "+12025550102", company = "Bolt" });
        var eve = await Lead(new { firstName = "Eve", email = "eve@example.com", company = "Echo", fields = new { Plan = "silver" } });
        var cara = await Lead(new { firstName = "Cara", phone = "+12025550103" });
        var dan = await Lead(new { firstName = "Dan", phone = "+12025550104", company = "Delta" });
        await (await Client.PostAsJsonAsync("/api/suppressions", new { address = "+12025550104", reason = "asked us to stop" })).ExpectAsync(HttpStatusCode.Created);

        var preview = await (await Client.PostAsJsonAsync("/api/messages/bulk/preview", new
        {
            leadIds = new[] { ana, bob, eve, cara, dan, "lead_missing" }, content = Template, batchId = "batch_spring",
        })).ExpectAsync(HttpStatusCode.OK);
        var response = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = new[] { ana, bob, eve, cara, dan, "lead_missing" }, content = Template, batchId = "batch_spring",
        })).ExpectAsync(HttpStatusCode.Accepted);
        Assert.That((preview["sendable"]!.GetValue<int>(), preview["rejected"]!.GetValue<int>()), Is.EqualTo((3, 2)),
            "the preview counts as the bulk does (review): suppressed Dan is neither sendable nor rejected");
        Assert.That((preview["suppressed"]!.GetValue<int>(), preview["total"]!.GetValue<int>()), Is.EqualTo((1, 6)), "probe K: the counts add up to the total");

        Assert.That(response.Str("batchId"), Is.EqualTo("batch_spring"));
        // Counted as the batch counts them: two leads refused without a message, one suppressed message stored `failed` (review:
        // the answer said 3 rejected and GET /api/batches/{id} 2).
        Assert.That((response["total"]!.GetValue<int>(), response["accepted"]!.GetValue<int>(), response["rejected"]!.GetValue<int>()), Is.EqualTo((6, 4, 2)));
        Assert.That(response["byStatus"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>()),
            Is.EquivalentTo(new Dictionary<string, int> { ["queued"] = 3, ["failed"] = 1, ["rejected"] = 2 }));
        var entries = response["messages"]!.AsArray().ToDictionary(e => e.Str("leadId"), e => e!);
        Assert.That(entries[cara]["error"].Str("code"), Is.EqualTo("missing_field"));
        Assert.That(entries[cara]["error"].Str("message"), Does.Contain("{{company}}"));
        Assert.That(entries[dan]["error"].Str("code"), Is.EqualTo("suppressed"));
        Assert.That(entries[dan].StrOrNull("messageId"), Is.Not.Null, "a suppressed lead still gets its failed message in the batch");
        Assert.That(entries["lead_missing"]["error"].Str("code"), Is.EqualTo("lead_not_found"));
        Assert.That(entries[eve].Str("type"), Is.EqualTo("email"), "a lead with only an email gets email");

        await Eventually.TrueAsync(() => Agent.OutboxFiles().Length == 3, "three sends at the channel");
        var sent = Agent.OutboxFiles().Select(f => JsonNode.Parse(File.ReadAllText(f))!).ToDictionary(j => j.Str("to"), j => j.Str("content"));
        Assert.That(sent, Is.EquivalentTo(new Dictionary<string, string>
        {
            ["+12025550101"] = "Hi Ana, your gold plan at Acme renews soon.",
            ["+12025550102"] = "Hi there, your standard plan at Bolt renews soon.",
            ["eve@example.com"] = "Hi Eve, your silver plan at Echo renews soon.",
        }));

        // The outbox file is written before the outcome is committed (a moment later, with the writer's next commit).
        var batch = await Eventually.ValueAsync(async () => (JsonObject?)await Client.GetJsonAsync("/api/batches/batch_spring"),
            b => b["byStatus"]?["sent"]?.GetValue<int>() == 3, "the three outcomes recorded");
        Assert.That(batch["total"]!.GetValue<int>(), Is.EqualTo(6));
        Assert.That(batch["byStatus"]!["sent"]!.GetValue<int>(), Is.EqualTo(3));
        Assert.That(batch["byStatus"]!["failed"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(batch["byStatus"]!["rejected"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That(batch["rejected"]!.GetValue<int>(), Is.EqualTo(response["rejected"]!.GetValue<int>()), "one count for the batch in both answers");
        Assert.That(batch["byType"]!["imessage"]!.GetValue<int>(), Is.EqualTo(3), "Ana, Bob and suppressed Dan");
        Assert.That(batch["byType"]!["email"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(batch["messages"]!.AsArray(), Has.Count.EqualTo(4));
        Assert.That(batch["rejections"]!.AsArray().Select(r => r.Str("code")), Is.EquivalentTo(new[] { "missing_field", "lead_not_found" }));
        var listed = await Client.GetJsonAsync("/api/messages?batchId=batch_spring&status=sent");
        Assert.That(listed["items"]!.AsArray(), Has.Count.EqualTo(3));
    }

    /// <summary>
    /// type auto in a bulk asks what is known about the addresses in one lookup: a phone decides (unknown → iMessage,
    /// known gray → SMS, whatever its email is known as); an email decides only for a lead without a phone (known blue →
    /// iMessage, otherwise email).
    /// </summary>
    [Test]
    public async Task BulkAuto_ShouldDecideEachLeadByWhatIsKnownOfTheAddressThatDecides()
    {
        var grayPhone = await Lead(new { firstName = "G", phone = "+12025550191" });
        var blueEmailOnly = await Lead(new { firstName = "B", email = "blue@example.com" });
        var unknownEmailOnly = await Lead(new { firstName = "U", email = "unknown@example.com" });
        var unknownPhoneBlueEmail = await Lead(new { firstName = "P", phone = "+12025550192", email = "blue2@example.com" });
        var grayPhoneBlueEmail = await Lead(new { firstName = "Q", phone = "+12025550193", email = "blue3@example.com" });
        var now = LineAgent.Storage.Time.ToMs(Agent.Time.GetUtcNow());
        await using (var c = await Agent.Services.GetRequiredService<LineAgent.Storage.Db>().OpenAsync())
            await Dapper.SqlMapper.ExecuteAsync(c, "INSERT INTO availability (address, imessage, source, checked_at) VALUES (@A, @I, 'probe', @T)", new[]
            {
                new { A = "+12025550191", I = "unavailable", T = now }, new { A = "blue@example.com", I = "available", T = now },
                new { A = "blue2@example.com", I = "available", T = now }, new { A = "+12025550193", I = "unavailable", T = now },
                new { A = "blue3@example.com", I = "available", T = now },
            });

        var response = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = new[] { grayPhone, blueEmailOnly, unknownEmailOnly, unknownPhoneBlueEmail, grayPhoneBlueEmail }, content = "Hi {{firstName}}",
            scheduledAt = Agent.Time.GetUtcNow().AddHours(1).ToString("O"),
        })).ExpectAsync(HttpStatusCode.Accepted);

        var types = response["messages"]!.AsArray().ToDictionary(e => e.Str("leadId"), e => e.Str("type"));
        Assert.That(types[grayPhone], Is.EqualTo("sms"));
        Assert.That(types[blueEmailOnly], Is.EqualTo("imessage"));
        Assert.That(types[unknownEmailOnly], Is.EqualTo("email"));
        Assert.That(types[unknownPhoneBlueEmail], Is.EqualTo("imessage"));
        Assert.That(types[grayPhoneBlueEmail], Is.EqualTo("sms"));
    }

    /// <summary>Each follow-up template is rendered per lead; a lead missing a field only a later follow-up uses is rejected, naming it.</summary>
    [Test]
    public async Task BulkFollowUps_ShouldBeRenderedPerLead_AndRejectALeadMissingAFieldOfALaterOne()
    {
        var ana = await Lead(new { firstName = "Ana", phone = "+12025550121", company = "Acme" });
        var bob = await Lead(new { firstName = "Bob", phone = "+12025550122" });

        var response = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = new[] { ana, bob }, content = "Hi {{firstName}}", scheduledAt = Agent.Time.GetUtcNow().AddHours(1).ToString("O"),
            followUps = new[] { new { after = "P1D", content = "Again, {{firstName}}" }, new { after = "P2D", content = "Last one for {{company}}" } },
        })).ExpectAsync(HttpStatusCode.Accepted);

        var entries = response["messages"]!.AsArray().ToDictionary(e => e.Str("leadId"), e => e!);
        Assert.That(entries[bob]["error"].Str("code"), Is.EqualTo("missing_field"));
        Assert.That(entries[bob]["error"].Str("message"), Does.Contain("{{company}}").And.Contain("followUps[1]"));
        var rows = (await Client.GetJsonAsync($"/api/messages?leadId={ana}"))["items"]!.AsArray()
            .OrderBy(m => m!["sequenceStep"]!.GetValue<int>()).Select(m => m.Str("content"));
        Assert.That(rows, Is.EqualTo(new[] { "Hi Ana", "Again, Ana", "Last one for Acme" }));
        Assert.That((await Client.GetJsonAsync($"/api/messages?leadId={bob}"))["items"]!.AsArray(), Is.Empty);

        // The 202 counts leads, one entry each; the batch counts every stored message, follow-ups too (README says both).
        var batch = await Client.GetJsonAsync($"/api/batches/{response.Str("batchId")}");
        Assert.That((response["total"]!.GetValue<int>(), response["accepted"]!.GetValue<int>(), response["rejected"]!.GetValue<int>()),
            Is.EqualTo((2, 1, 1)));
        Assert.That((batch["total"]!.GetValue<int>(), batch["byStatus"]!["scheduled"]!.GetValue<int>()), Is.EqualTo((4, 3)));
    }

    /// <summary>An email's subject is a template like its content: it went out as typed, {{firstName}} and all (black-box probe).</summary>
    [Test]
    public async Task BulkEmail_ShouldRenderTheSubjectPerLead_AndRefuseABrokenOne()
    {
        var ana = await Lead(new { firstName = "Ana", email = "ana@example.com", company = "Acme" });
        var sam = await Lead(new { firstName = "Sam", email = "sam@example.com" });
        var noName = await Lead(new { email = "who@example.com" });
        var body = new
        {
            leadIds = new[] { ana, sam, noName }, type = "email", content = "Hi {{firstName|there}}",
            subject = "Offer for {{firstName}} at {{company|your team}}", scheduledAt = Agent.Time.GetUtcNow().AddHours(1).ToString("O"),
        };

        var preview = await (await Client.PostAsJsonAsync("/api/messages/bulk/preview", body)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(preview["messages"]!.AsArray().Select(e => e!["subject"]?.GetValue<string>()),
            Is.EqualTo(new[] { "Offer for Ana at Acme", "Offer for Sam at your team", null }), "the preview shows what each lead's inbox will show");
        var response = await (await Client.PostAsJsonAsync("/api/messages/bulk", body)).ExpectAsync(HttpStatusCode.Accepted);

        var entries = response["messages"]!.AsArray().ToDictionary(e => e.Str("leadId"), e => e!);
        Assert.That(entries[noName]["error"].Str("code"), Is.EqualTo("missing_field"));
        Assert.That(entries[noName]["error"].Str("message"), Does.Contain("{{firstName}}").And.Contain("subject"));
        var subjects = new[] { ana, sam }.Select(async id => (await Client.GetJsonAsync($"/api/messages?leadId={id}"))["items"]![0].Str("subject"));
        Assert.That(await Task.WhenAll(subjects), Is.EqualTo(new[] { "Offer for Ana at Acme", "Offer for Sam at your team" }));

        var problem = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = new[] { ana }, type = "email", content = "Hi", subject = "Offer for {firstName}", batchId = "..",
        })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(new[] { "subject", "batchId" }), "a batch id of .. could never be read back (probe)");
    }

    [Test]
    public async Task Bulk_ShouldSelectLeadsByFilter_AndCancelAScheduledBatch()
    {
        for (var i = 0; i < 4; i++)
            await Lead(new { firstName = $"L{i}", phone = $"+1202555011{i}", tags = new[] { i % 2 == 0 ? "even" : "odd" } });
        var at = Agent.Time.GetUtcNow().AddHours(1);

        var response = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadFilter = new { tag = "even" }, content = "Hello {{firstName}}", scheduledAt = at.ToString("O"),
        })).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(response["accepted"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That(response["messages"]!.AsArray().Select(m => m.Str("status")), Is.All.EqualTo("scheduled"));
        var batchId = response.Str("batchId");
        Assert.That(batchId, Does.StartWith("batch_"));

        var cancelled = await (await Client.PostAsync($"/api/batches/{batchId}/cancel", null)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(cancelled["cancelled"]!.GetValue<int>(), Is.EqualTo(2));
        await Agent.AdvanceToAsync(at.AddMinutes(1));
        Assert.That(Agent.OutboxFiles(), Is.Empty);
        var batch = await Client.GetJsonAsync($"/api/batches/{batchId}");
        Assert.That(batch["byStatus"]!["cancelled"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That((await Client.GetAsync("/api/batches/batch_nope")).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task Bulk_ShouldReturn400NamingEveryProblem_AndStoreNothing()
    {
        var problem = await (await Client.PostAsJsonAsync("/api/messages/bulk", new { content = "Hi {{fristName}}", type = "fax", scheduledAt = "soon" }))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(new[] { "content", "leadIds", "type", "scheduledAt" }));
        Assert.That(problem.Str("detail"), Does.Contain("{{fristName}}"));
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
    }

    /// <summary>
    /// A bulk body with a problem of shape (a wrong type, an unknown field) also names the problems of its other fields, on
    /// /bulk and its preview (they named only the shape's, and the rest came one round trip at a time); a problem that
    /// follows only from a field left out for its shape is not named.
    /// </summary>
    [TestCase("/api/messages/bulk")]
    [TestCase("/api/messages/bulk/preview")]
    public async Task Bulk_ShouldNameProblemsOfValue_BesideProblemsOfShape(string route)
    {
        async Task<JsonObject> Refused(string json) => await (await Client.PostAsync(route,
            new StringContent(json, System.Text.Encoding.UTF8, "application/json"))).ExpectAsync(HttpStatusCode.BadRequest);

        var all = await Refused("""{"leadIds":["lead_x"],"content":"Hi {{fristName}}","type":"fax","scheduledAt":"soon","lineId":"nope","subject":5,"colour":"red"}""");
        Assert.That(all["problems"]!.AsArray().Select(p => $"{p.Str("field")}:{p.Str("code")}"), Is.EquivalentTo(new[]
        {
            "subject:invalid_type", "colour:unknown_field", "content:invalid_template", "type:invalid_type", "scheduledAt:invalid_schedule",
            "lineId:line_not_found",
        }), all.ToJsonString());
        var leadIds = await Refused("""{"leadIds":"lead_x","content":"Hi","scheduledAt":"2030-01-01T09:00","timeZone":3}""");
        Assert.That(leadIds.ProblemFields(), Is.EquivalentTo(new[] { "leadIds", "timeZone" }), "no missing_leads, no invalid_schedule: " + leadIds.ToJsonString());
        // missing_leads is named on leadIds: with leadFilter left out for its shape, it follows from that alone.
        var filter = await Refused("""{"leadFilter":"vip","content":"Hi"}""");
        Assert.That(filter.ProblemFields(), Is.EqualTo(new[] { "leadFilter" }), filter.ToJsonString());
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task Bulk_WithAnEmptyOrMisspeltFilter_OrAnUnclosedPlaceholder_ShouldBe400_AndSendNothing()
    {
        await Lead(new { firstName = "Ana", phone = "+12025550101", tags = new[] { "demo" } });
        async Task<JsonObject> Refused(string json) => await (await Client.PostAsync("/api/messages/bulk",
            new StringContent(json, System.Text.Encoding.UTF8, "application/json"))).ExpectAsync(HttpStatusCode.BadRequest);

        Assert.That((await Refused("""{"leadFilter":{},"content":"Hi"}""")).ProblemFields(), Is.EqualTo(new[] { "leadFilter" }));
        Assert.That((await Refused("""{"leadFilter":{"tag":" ","q":""},"content":"Hi"}""")).ProblemFields(), Is.EqualTo(new[] { "leadFilter" }));
        var misspelt = await Refused("""{"leadFilter":{"tags":"demo"},"content":"Hi"}""");
        Assert.That(misspelt.ProblemFields(), Is.EqualTo(new[] { "leadFilter.tags" }));
        Assert.That(misspelt.Str("detail"), Does.Contain("Did you mean 'tag'?"));
        var unclosed = await Refused("""{"leadFilter":{"tag":"demo"},"content":"Hi {{firstName"}""");
        Assert.That(unclosed.ProblemCodes(), Is.EqualTo(new[] { "invalid_template" }));
        // The console's preview says the same, and names an empty lead id instead of failing on it.
        var ana = (await Client.GetJsonAsync("/api/leads"))["items"]![0].Str("id");
        var preview = await (await Client.PostAsJsonAsync("/api/console/preview", new { content = "Hi {{firstName", leadIds = new[] { ana } })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(preview.ProblemCodes(), Is.EqualTo(new[] { "invalid_template" }));
        var nullId = await (await Client.PostAsync("/api/console/preview", new StringContent("""{"content":"Hi","leadIds":[null]}""", System.Text.Encoding.UTF8, "application/json")))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(nullId.ProblemFields(), Is.EqualTo(new[] { "leadIds" }));
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
    }

    /// <summary>Not one of the ids is a lead: 404 like a filter that matches none (it was a 202 with a batch of rejections only).</summary>
    [Test]
    public async Task Bulk_WhoseLeadIdsAreNoneOfThemLeads_ShouldBe404_AndStoreNoBatch()
    {
        await Lead(new { firstName = "Ana", phone = "+12025550101" });
        var body = new { leadIds = new[] { "lead_gone1", "lead_gone2" }, content = "Hi {{firstName|there}}", batchId = "batch_ghosts" };

        var problem = await (await Client.PostAsJsonAsync("/api/messages/bulk", body)).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That((problem.Str("code"), problem.Str("detail")), Is.EqualTo(("lead_not_found", "None of the 2 leadIds is a lead; nothing was stored or sent.")));
        var preview = await (await Client.PostAsJsonAsync("/api/messages/bulk/preview", body)).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(preview.Str("code"), Is.EqualTo("lead_not_found"));
        await (await Client.GetAsync("/api/batches/batch_ghosts")).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
    }

    [Test]
    public async Task Bulk_WhoseFilterMatchesNoLead_ShouldBe404_AndStoreNoBatch()
    {
        await Lead(new { firstName = "Ana", phone = "+12025550101", tags = new[] { "demo" } });
        var body = new { leadFilter = new { tag = "nobody" }, content = "Hi {{firstName}}", batchId = "batch_empty" };

        var problem = await (await Client.PostAsJsonAsync("/api/messages/bulk", body)).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(problem.Str("code"), Is.EqualTo("lead_not_found"));
        Assert.That(problem.Str("detail"), Does.Contain("tag 'nobody'"));
        var preview = await (await Client.PostAsJsonAsync("/api/messages/bulk/preview", body)).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That(preview.Str("code"), Is.EqualTo("lead_not_found"));
        await (await Client.GetAsync("/api/batches/batch_empty")).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
    }

    /// <summary>
    /// A plan that fails after the writer has taken earlier parts (a lead whose stored fields are not JSON, read for a
    /// {{fields.x}} placeholder): the transaction is abandoned, nothing of the bulk is stored or sent, and the writer goes on.
    /// </summary>
    [Test]
    public async Task ABulkWhosePlanFailsPartWay_ShouldStoreNothing_AndTheWriterGoesOn()
    {
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
            ids.Add(await Lead(new { firstName = $"L{i}", phone = $"+1202555013{i}", company = "Acme" }));
        await using (var c = await Agent.Services.GetRequiredService<Db>().OpenAsync())
            await c.ExecuteAsync("UPDATE leads SET fields = '{not json' WHERE id = @Id", new { Id = ids[4] });

        var failed = await Client.PostAsJsonAsync("/api/messages/bulk", new { leadIds = ids, content = Template, batchId = "batch_broken" });

        Assert.That(failed.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError), await failed.Content.ReadAsStringAsync());
        await (await Client.GetAsync("/api/batches/batch_broken")).ExpectAsync(HttpStatusCode.NotFound);
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty);
        var after = await (await Client.PostAsJsonAsync("/api/messages/bulk", new { leadIds = ids.Take(4), content = Template, batchId = "batch_after" }))
            .ExpectAsync(HttpStatusCode.Accepted);
        Assert.That(after["accepted"]!.GetValue<int>(), Is.EqualTo(4));
        await Eventually.TrueAsync(() => Agent.OutboxFiles().Length == 4, "the next bulk's four sends");
        Assert.That((await Client.GetJsonAsync("/api/messages?limit=100"))["items"]!.AsArray().Select(m => m.Str("batchId")).Distinct(),
            Is.EqualTo(new[] { "batch_after" }));
    }

    [Test]
    public async Task Bulk_ShouldHonourTheIdempotencyKey()
    {
        var ana = await Lead(new { firstName = "Ana", phone = "+12025550101" });
        HttpRequestMessage Request(string content) => new(HttpMethod.Post, "/api/messages/bulk")
        {
            Content = JsonContent.Create(new { leadIds = new[] { ana }, content }), Headers = { { "Idempotency-Key", "bulk-1" } },
        };

        var first = await (await Client.SendAsync(Request("Hi {{firstName}}"))).ExpectAsync(HttpStatusCode.Accepted);
        var again = await (await Client.SendAsync(Request("Hi {{firstName}}"))).ExpectAsync(HttpStatusCode.Accepted);
        var other = await (await Client.SendAsync(Request("Bye {{firstName}}"))).ExpectAsync(HttpStatusCode.Conflict);

        Assert.That(again.Str("batchId"), Is.EqualTo(first.Str("batchId")));
        Assert.That(again["messages"]![0].Str("messageId"), Is.EqualTo(first["messages"]![0].Str("messageId")));
        Assert.That(other.Str("code"), Is.EqualTo("idempotency_key_reused"));
        await Eventually.TrueAsync(() => Agent.OutboxFiles().Length == 1, "one send");
        Assert.That((await Client.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Has.Count.EqualTo(1));
    }
}

/// <summary>A bulk planned in parts whose writer stops waiting for the next part.</summary>
public sealed class BulkPartsTests : AgentTest
{
    /// <summary>
    /// The writer waits for the plan's parts at most BulkSend.PlanWait in all (every other write waits behind it). Here no wait at all,
    /// and the second part is planned only once the writer has given up: it rolls back, and the bulk is stored once it
    /// is planned, whole and once.
    /// </summary>
    [Test]
    public async Task ABulkWhoseWriterGivesUpWaitingForAPart_ShouldBeStoredWhole_Once()
    {
        var bulk = Agent.Services.GetRequiredService<BulkSend>();
        bulk.LeadsPerPart = 2;
        bulk.PlanWait = TimeSpan.Zero;
        bulk.BeforeNextPart = writer => writer.ContinueWith(_ => { }, TaskScheduler.Default);
        var ids = new List<string>();
        for (var i = 0; i < 7; i++)
            ids.Add((await (await Client.PostAsJsonAsync("/api/leads", new { firstName = $"L{i}", phone = $"+1202555014{i}" }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var answer = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = ids.Append("lead_missing"), content = "Hi {{firstName}}", batchId = "batch_parts", scheduledAt = "2030-01-01T00:00:00Z",
        })).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(bulk.StoredAfterPlanning, Is.EqualTo(1));
        Assert.That((answer["accepted"]!.GetValue<int>(), answer["rejected"]!.GetValue<int>()), Is.EqualTo((7, 1)));
        var batch = await Client.GetJsonAsync("/api/batches/batch_parts");
        Assert.That(batch["total"]!.GetValue<int>(), Is.EqualTo(8));
        Assert.That(batch["messages"]!.AsArray().Select(m => m.Str("content")), Is.EquivalentTo(Enumerable.Range(0, 7).Select(i => $"Hi L{i}")));
        Assert.That((await Client.GetJsonAsync("/api/messages?limit=200"))["items"]!.AsArray(), Has.Count.EqualTo(7), "each message once");
        Assert.That(answer["messages"]!.AsArray().Where(m => m!["messageId"] is not null).Select(m => m.Str("messageId")),
            Is.EquivalentTo(batch["messages"]!.AsArray().Select(m => m.Str("id"))), "the answer names the stored messages");
    }

    /// <summary>
    /// PlanWait bounds the writer's whole wait, not each part's: parts that each come well within it but together take
    /// longer must still end the wait (a review showed a write held 3.6 s behind a 0.6 s wait). Each part after the
    /// first comes at least 100 ms after the one before, so five of them take at least 0.5 s against a 0.2 s wait.
    /// </summary>
    [Test]
    public async Task PartsThatEachComeInTime_ButTogetherTooLate_ShouldEndTheWritersWait()
    {
        var bulk = Agent.Services.GetRequiredService<BulkSend>();
        bulk.LeadsPerPart = 1;
        bulk.PlanWait = TimeSpan.FromMilliseconds(200);
        bulk.BeforeNextPart = _ => Task.Delay(TimeSpan.FromMilliseconds(100));
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
            ids.Add((await (await Client.PostAsJsonAsync("/api/leads", new { firstName = $"L{i}", phone = $"+1202555015{i}" }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var answer = await (await Client.PostAsJsonAsync("/api/messages/bulk", new
        {
            leadIds = ids, content = "Hi {{firstName}}", batchId = "batch_slow", scheduledAt = "2030-01-01T00:00:00Z",
        })).ExpectAsync(HttpStatusCode.Accepted);

        Assert.That(bulk.StoredAfterPlanning, Is.EqualTo(1));
        Assert.That(answer["accepted"]!.GetValue<int>(), Is.EqualTo(6));
        Assert.That((await Client.GetJsonAsync("/api/batches/batch_slow"))["total"]!.GetValue<int>(), Is.EqualTo(6));
        Assert.That((await Client.GetJsonAsync("/api/messages?limit=200"))["items"]!.AsArray(), Has.Count.EqualTo(6), "each message once");
    }
}
