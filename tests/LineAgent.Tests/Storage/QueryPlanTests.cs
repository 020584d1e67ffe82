using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The dispatcher's queries and the history filters are answered from indexes, never by scanning the
/// messages table: what keeps them fast at a million rows (the plans do not depend on the row count).
/// </summary>
public sealed class QueryPlanTests
{
    private TempDir _dir = null!;
    private Db _db = null!;

    [OneTimeSetUp]
    public void Migrate()
    {
        _dir = new TempDir();
        _db = new Db(_dir.File("plans.db"));
        Migrator.Migrate(_db);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    private async Task<string> PlanAsync(string sql, object parameters)
    {
        await using var c = await _db.OpenAsync();
        var rows = await c.QueryAsync("EXPLAIN QUERY PLAN " + sql, parameters);
        return string.Join("\n", rows.Select(r => (string)((IDictionary<string, object>)r)["detail"]));
    }

    private static readonly object Due = new { LineId = "default", Now = 1L, Limit = 1, Id = "msg_x", Claim = "c", Cutoff = 1L, MaxLatenessText = "1 h", Waiting = 2L };

    /// <summary>Each must reach only pending (or sending) rows: a status or due index, never a line's whole history.</summary>
    [TestCase(MessageSql.PeekDue, "ix_messages_due_line")]
    [TestCase(MessageSql.PendingDueTimes, "ix_messages_due_line")]
    [TestCase(MessageSql.PendingDueTimesAnyLine, "USING INDEX ix_messages_due")]
    [TestCase(MessageSql.Sending, "(status=?)")]
    [TestCase(MessageSql.FailMissed, "(status=?)")]
    [TestCase(LineAgent.Delivery.DeliverySql.AwaitingConfirmation, "(status=?)")]
    public async Task DispatcherQueries_ShouldUseTheirIndex(string sql, string index)
    {
        var plan = await PlanAsync(sql, Due);
        Assert.That(plan, Does.Contain(index), plan);
        Assert.That(plan, Does.Not.Contain("ix_messages_line"), plan);
        Assert.That(plan, Does.Not.Match(@"SCAN messages\b(?! USING)"), plan);
    }

    [Test]
    public async Task StatusCounts_ShouldReadOnlyTodaysRows()
    {
        // /api/status, every 30 s from the menu bar: today's sends through the time index, today's failures through
        // their events; before, every sent and failed row of the history was read for its sent_at / updated_at.
        var plan = await PlanAsync(LineAgent.Api.StatusQuery.CountsSql, new { Midnight = 1L, Until = 2L });
        Assert.That(plan, Does.Contain("USING INDEX ix_messages_time (<expr>>? AND <expr><?)"), plan);
        Assert.That(plan, Does.Contain("SEARCH e USING INDEX ix_message_events_failed (at>?)"), plan);
        Assert.That(plan, Does.Not.Match(@"SCAN (messages|m|e)\b(?! USING COVERING)"), plan);
    }

    [TestCase("status=sent", "ix_messages_status")]
    [TestCase("type=email", "ix_messages_type")]
    [TestCase("lineId=mac-1", "ix_messages_line")]
    [TestCase("leadId=lead_1", "ix_messages_lead")]
    [TestCase("batchId=batch_1", "ix_messages_batch")]
    [TestCase("from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", "ix_messages_time")]
    [TestCase("q=invoice", "VIRTUAL TABLE INDEX")]
    public async Task HistoryFilters_ShouldUseAnIndex(string query, string expected)
    {
        var (filter, problems) = MessageFilter.Parse(new QueryCollection(QueryHelpers(query)), paging: true);
        Assert.That(problems, Is.Empty);
        var (sql, p) = filter.ToSql(51);
        await using var c = await _db.OpenAsync();
        var plan = string.Join("\n", (await c.QueryAsync("EXPLAIN QUERY PLAN " + sql, p)).Select(r => (string)((IDictionary<string, object>)r)["detail"]));
        Assert.That(plan, Does.Contain(expected), plan);
        Assert.That(plan, Does.Not.Contain("SCAN m\n").And.Not.EndWith("SCAN m"), plan);
    }

    /// <summary>
    /// Lookups by address (availability from history, the preview's known recipients) go through the address indexes: 10,000
    /// addresses are 10,000 index probes, not a read of every iMessage row (ix_messages_type) or of a line's whole history.
    /// Availability probes the outcome indexes (migration 012), which hold only rows that tell blue or gray, newest last,
    /// not every message ever sent to the address. The address indexes hold only handed-over and inbound rows (migration 014):
    /// each lookup says so beside the address in each OR branch, or SQLite would not use them and would read a line's whole
    /// history (ix_messages_handed) or every row.
    /// </summary>
    [TestCase(LineAgent.Availability.AvailabilityService.OutcomesOfMany, "ix_messages_outcome_phone", "ix_messages_outcome_email")]
    [TestCase(LineAgent.Availability.AvailabilityService.NewestOutcome, "ix_messages_outcome_phone", "ix_messages_outcome_email")]
    [TestCase(LineAgent.Scheduling.PacingSimulation.KnownPhones, "ix_messages_phone", null)]
    [TestCase(LineAgent.Scheduling.PacingSimulation.KnownEmails, "ix_messages_email", null)]
    [TestCase(LineAgent.Scheduling.LinePacer.KnownAddress, "ix_messages_phone", "ix_messages_email")]
    [TestCase(LineAgent.Delivery.DeliverySql.LastOutboundBefore, "ix_messages_phone", "ix_messages_email")]
    [TestCase(LineAgent.Delivery.DeliverySql.NewestInboundFrom, "ix_messages_phone", "ix_messages_email")]
    [TestCase(LineAgent.Delivery.DeliverySql.SameInbound, "ix_messages_phone", "ix_messages_email")]
    [TestCase(LineAgent.Delivery.DeliverySql.PendingStopOnReply, "ix_messages_stop_phone", "ix_messages_stop_email")]
    [TestCase(MessageSql.CancelOnReply, "ix_messages_stop_phone", "ix_messages_stop_email")]
    public async Task AddressLookups_ShouldProbeTheAddressIndexes(string sql, string index, string? alsoIndex)
    {
        var plan = await PlanAsync(sql, new
        {
            A = "[\"+14155550100\"]", Addresses = "[\"+14155550100\"]", Address = "+14155550100", LineId = "default",
            Phone = "+14155550100", Email = "ana@example.com", Id = "msg_x", At = 1L, Text = "hi", ReplyAt = 1L, Now = 1L, Message = "m",
        });
        Assert.That(plan, Does.Contain(index), plan);
        if (alsoIndex is not null)
            Assert.That(plan, Does.Contain(alsoIndex), plan);
        Assert.That(plan, Does.Not.Contain("ix_messages_type").And.Not.Contain("ix_messages_handed").And.Not.Contain("ix_messages_line")
            .And.Not.Contain("ix_messages_status"), plan);
        Assert.That(plan, Does.Not.Match(@"SCAN messages"), plan);
    }

    /// <summary>
    /// Every statement of the lifecycle and delivery stores reaches `messages` through an index or its rowid, never by
    /// reading the whole table (the agent keeps no ANALYZE statistics, so a plan is whatever the schema gives).
    /// </summary>
    [TestCaseSource(nameof(StoreStatements))]
    public async Task StoreStatements_ShouldNotScanTheMessagesTable(string name, string sql)
    {
        var p = new DynamicParameters();
        foreach (var n in System.Text.RegularExpressions.Regex.Matches(sql, @"@(\w+)").Select(m => m.Groups[1].Value).Distinct())
            p.Add(n, n is "Lines" or "Keys" ? new[] { "x" } : (object)1); // the two list parameters (Dapper expands them)
        var plan = await PlanAsync(sql, p);
        Assert.That(plan, Does.Not.Match(@"(?m)^SCAN (messages|m)\b(?! USING)"), $"{name}:\n{plan}");
    }

    private static IEnumerable<TestCaseData> StoreStatements() =>
        new[] { typeof(MessageSql), typeof(LineAgent.Delivery.DeliverySql) }
            .SelectMany(t => t.GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
                .Where(f => f.IsLiteral && f.FieldType == typeof(string))
                .Select(f => (Name: $"{t.Name}.{f.Name}", Sql: (string)f.GetRawConstantValue()!)))
            .Where(x => System.Text.RegularExpressions.Regex.IsMatch(x.Sql, @"\b(FROM|UPDATE|INTO)\s+messages\b") && !x.Sql.TrimStart().StartsWith("INSERT INTO messages (", StringComparison.Ordinal))
            .Select(x => new TestCaseData(x.Name, x.Sql).SetName(x.Name));

    private static Dictionary<string, StringValues> QueryHelpers(string query) =>
        query.Split('&').Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => new StringValues(Uri.UnescapeDataString(kv[1])));
}
