using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using CsvHelper;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>Every history filter, cursor paging and both export formats.</summary>
public sealed class HistoryTests
{
    private AgentFactory _agent = null!;
    private HttpClient _api = null!;
    private readonly Dictionary<string, string> _ids = new();

    [OneTimeSetUp]
    public async Task SeedAsync()
    {
        _agent = new AgentFactory(settings: new Dictionary<string, string?>
        {
            ["Lines:0:Id"] = "mac-1",
            ["Lines:1:Id"] = "mac-2",
            ["Lines:1:Email:From"] = "Sales <sales@example.com>",
        });
        _api = _agent.Api();
        async Task Add(string name, object body)
        {
            var response = await _api.SendMessageAsync(body);
            _ids[name] = (await response.JsonAsync()).Str("id");
            _agent.Time.Advance(TimeSpan.FromMinutes(1));
        }
        await Add("ana", new { lineId = "mac-1", content = "Hola Ana, ¿qué tal la demo?", recipientPhone = "+12025550101", recipientName = "Ana Ruiz", batchId = "batch_A" });
        await Add("bob", new { lineId = "mac-1", content = "Bob, the contract is ready", type = "sms", recipientPhone = "+12025550102", recipientName = "Bob Stone", batchId = "batch_A" });
        await Add("cara", new { lineId = "mac-2", content = "Invoice attached for Cara", recipientEmail = "cara@example.com", recipientName = "Cara Diaz", subject = "Invoice" });
        await Add("later", new { lineId = "mac-2", content = "Reminder about tomorrow", recipientPhone = "+12025550104", scheduledAt = "2026-12-24T09:00:00Z" });
        await Add("dan", new { lineId = "mac-1", content = "100% off_today for Dan", recipientPhone = "+12025550105", recipientName = "Dan O'Neil" });
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _api.Dispose();
        _agent.Dispose();
    }

    private async Task<string[]> Ids(string query)
    {
        var page = await _api.GetJsonAsync("/api/messages?" + query);
        return page["items"]!.AsArray().Select(m => _ids.Single(kv => kv.Value == m.Str("id")).Key).ToArray();
    }

    [TestCase("", new[] { "dan", "later", "cara", "bob", "ana" })]
    [TestCase("status=sent", new[] { "dan", "cara", "bob", "ana" })]
    [TestCase("status=scheduled", new[] { "later" })]
    [TestCase("status=scheduled,sent&type=sms", new[] { "bob" })]
    [TestCase("status=Scheduled,SENT&type=SMS", new[] { "bob" })] // any case, as format=CSV
    [TestCase("type=email", new[] { "cara" })]
    [TestCase("type=imessage", new[] { "dan", "later", "ana" })]
    [TestCase("lineId=mac-2", new[] { "later", "cara" })]
    [TestCase("batchId=batch_A", new[] { "bob", "ana" })]
    [TestCase("recipient=Ruiz", new[] { "ana" })]
    [TestCase("recipient=cara@", new[] { "cara" })]
    [TestCase("recipient=5550102", new[] { "bob" })]
    [TestCase("recipient=(202)%20555-0102", new[] { "bob" })]
    [TestCase("recipient=%2B1%20202%20555%200102", new[] { "bob" })]
    [TestCase("recipient=202.555.0102", new[] { "bob" })]
    [TestCase("recipient=%2B2025", new string[0])]
    [TestCase("recipient=%25", new string[0])]
    [TestCase("q=contract", new[] { "bob" })]
    [TestCase("q=que", new[] { "ana" })]
    [TestCase("q=cara", new[] { "cara" })]
    [TestCase("q=\"ready", new[] { "bob" })]
    [TestCase("q=AND OR ( NEAR", new string[0])]
    [TestCase("q=off_today", new[] { "dan" })]
    [TestCase("from=2026-12-01T00:00:00Z", new[] { "later" })]
    [TestCase("from=2026-11-26T12:01:00Z&to=2026-11-26T12:03:00Z", new[] { "cara", "bob" })]
    [TestCase("from=2026-11-26T14:01:00%2B0200&to=2026-11-26T07:03:00-05", new[] { "cara", "bob" })]
    [TestCase("direction=inbound", new string[0])]
    [TestCase("direction=OUTBOUND&leadId=lead_x", new string[0], Description = "names in any case, as status and type (probe: 400)")]
    [TestCase("leadId=lead_x", new string[0])]
    public async Task List_ShouldFilter(string query, string[] expected)
    {
        Assert.That(await Ids(query), Is.EqualTo(expected));
    }

    [Test]
    public async Task List_ShouldPageWithCursor_NewestFirst()
    {
        var seen = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await _api.GetJsonAsync("/api/messages?limit=2" + (cursor is null ? "" : "&cursor=" + cursor));
            seen.AddRange(page["items"]!.AsArray().Select(m => m.Str("id")));
            cursor = page.StrOrNull("nextCursor");
            pages++;
        } while (cursor is not null);

        Assert.That(pages, Is.EqualTo(3));
        Assert.That(seen, Is.EqualTo(new[] { "dan", "later", "cara", "bob", "ana" }.Select(n => _ids[n])));
    }

    [Test]
    public async Task List_ShouldReturn400NamingEveryBadFilter()
    {
        var problem = await (await _api.GetAsync("/api/messages?status=lost&type=fax&limit=9999&from=yesterday&cursor=zzz&direction=up"))
            .ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EquivalentTo(new[] { "status", "type", "limit", "from", "cursor", "direction" }));
    }

    /// <summary>
    /// Probe K: `?batchId=` (a script's unset variable) listed, and exported, every message as if no filter were given. An
    /// empty filter is a 400 naming it; an empty text search or paging parameter still means none.
    /// </summary>
    [Test]
    public async Task AnEmptyFilter_ShouldBeRefused_NotTakenAsNoFilter()
    {
        var list = await (await _api.GetAsync("/api/messages?batchId=&leadId=%20%20&status=")).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(list.ProblemFields(), Is.EquivalentTo(new[] { "batchId", "leadId", "status" }));
        // Repeated (status and type take several values): an empty one among them too (probe L: status=&status= listed everything).
        var repeated = await (await _api.GetAsync("/api/messages?status=&status=&type=sms&type=%20")).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(repeated.ProblemFields(), Is.EquivalentTo(new[] { "status", "type" }));
        var export = await (await _api.GetAsync("/api/messages/export?BatchId=")).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(export.ProblemFields(), Is.EqualTo(new[] { "batchId" }));
        var all = await (await _api.GetAsync("/api/messages?q=&recipient=&limit=&cursor=")).ExpectAsync(HttpStatusCode.OK);
        Assert.That(all["items"]!.AsArray(), Has.Count.EqualTo(_ids.Count));
    }

    [Test]
    public async Task AnOffsetWithAnUnencodedPlus_ShouldBeToldToWriteItAs2B()
    {
        var problem = await (await _api.GetAsync("/api/messages?from=2026-12-05T00:00:00+02:00")).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.Str("detail"), Does.Contain("%2B"));
    }

    [Test]
    public async Task ExportCsv_ShouldHaveAHeaderRowAndEveryMatch()
    {
        var response = await _api.GetAsync("/api/messages/export?lineId=mac-1");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/csv"));
        using var reader = new StringReader(await response.Content.ReadAsStringAsync());
        using var csv = new CsvReader(reader, CultureInfo.InvariantCulture);
        var rows = csv.GetRecords<dynamic>().Cast<IDictionary<string, object>>().ToList();

        Assert.That(csv.HeaderRecord, Does.Contain("Id").And.Contain("Status").And.Contain("Content").And.Contain("RecipientPhone"));
        Assert.That(rows.Select(r => (string)r["Id"]), Is.EqualTo(new[] { _ids["dan"], _ids["bob"], _ids["ana"] }));
        Assert.That(rows.Single(r => (string)r["Id"] == _ids["ana"])["Content"], Is.EqualTo("Hola Ana, ¿qué tal la demo?"));
        Assert.That(rows.Select(r => (string)r["DryRun"]).Distinct(), Is.SubsetOf(new[] { "true", "false" }), "as in the JSON, not True/False");
    }

    [Test]
    public async Task ExportNdjson_ShouldStreamOneMessagePerLine()
    {
        var text = await _api.GetStringAsync("/api/messages/export?format=ndjson&q=invoice");
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1));
        Assert.That(JsonNode.Parse(lines[0]).Str("id"), Is.EqualTo(_ids["cara"]));

        var all = (await _api.GetStringAsync("/api/messages/export?format=ndjson")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(all, Has.Length.EqualTo(5));
        Assert.That(string.Join("\n", all), Does.Contain("\"+1202").And.Not.Contain("\\u002B"), "phones as the API writes them");
    }

    [Test]
    public async Task Export_ShouldReturn400_ForAnUnknownFormat()
    {
        var problem = await (await _api.GetAsync("/api/messages/export?format=xml")).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemFields(), Is.EqualTo(new[] { "format" }));
    }
}
