using System.Diagnostics;
using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace LineAgent.Tests.Storage;

/// <summary>
/// A benchmark, not a test (run it with --filter Name~MillionRows): 1,000,000 messages, then the
/// dispatcher's queries and the history filters timed. Prints figures; asserts nothing about speed.
/// </summary>
[Explicit("benchmark: fills 1,000,000 rows")]
public sealed class MillionRowsBenchmark
{
    [Test]
    public async Task MillionRows()
    {
        using var dir = new TempDir();
        var db = new Db(dir.File("million.db"));
        Migrator.Migrate(db);
        var fill = Stopwatch.StartNew();
        await using (var c = await db.OpenAsync())
        await using (var tx = c.BeginTransaction())
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO messages (id, content, type, requested_type, status, line_id, batch_id, recipient_phone, recipient_name,
                                      due_at, sent_at, created_at, updated_at)
                VALUES (@id, @content, @type, 'auto', @status, @line, @batch, @phone, @name, @due, @sent, @due, @due)
                """;
            var p = new[] { "@id", "@content", "@type", "@status", "@line", "@batch", "@phone", "@name", "@due", "@sent" }
                .Select(n => cmd.Parameters.Add(new Microsoft.Data.Sqlite.SqliteParameter(n, null))).ToArray();
            cmd.Prepare();
            var t0 = 1_700_000_000_000L;
            string[] words = ["invoice", "demo", "contract", "renewal", "hello", "meeting", "offer", "thanks"];
            for (var i = 0; i < 1_000_000; i++)
            {
                var pending = i % 1000 == 0;
                p[0].Value = $"msg_{i:D10}";
                p[1].Value = $"{words[i % 8]} number {i} for {words[(i / 8) % 8]}";
                p[2].Value = i % 3 == 0 ? "sms" : "imessage";
                p[3].Value = pending ? "scheduled" : i % 17 == 0 ? "failed" : "sent";
                p[4].Value = $"mac-{i % 4}";
                p[5].Value = $"batch_{i / 5000}";
                p[6].Value = $"+1202{5000000 + i % 900000:0000000}";
                p[7].Value = $"Lead {i}";
                p[8].Value = t0 + i * 1000L + (pending ? 86_400_000L : 0);
                p[9].Value = pending ? DBNull.Value : t0 + i * 1000L;
                cmd.ExecuteNonQuery();
            }
            // Rows written straight into the table reach the full-text indexes as the agent's do: after the inserts.
            c.Execute(MessageSql.IndexNewForSearch, transaction: tx);
            tx.Commit();
        }
        TestContext.Out.WriteLine($"filled 1,000,000 rows in {fill.Elapsed.TotalSeconds:0.0} s");

        await using var conn = await db.OpenAsync();
        async Task Time(string what, string sql, object? param)
        {
            await conn.QueryAsync(sql, param); // warm
            var clock = Stopwatch.StartNew();
            const int runs = 20;
            for (var i = 0; i < runs; i++)
                await conn.QueryAsync(sql, param);
            TestContext.Out.WriteLine($"{what,-28} {clock.Elapsed.TotalMilliseconds / runs,8:0.000} ms");
        }
        var now = 1_700_000_000_000L + 2_000_000_000L;
        await Time("PeekDue (line)", MessageSql.PeekDue, new { LineId = "mac-1", Now = now, Limit = 1 });
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < 20; i++)
                await LineAgent.Scheduling.Dispatcher.NextDueAtAsync(conn, "mac-1", long.MaxValue, CancellationToken.None);
            TestContext.Out.WriteLine($"{"NextDueAtAsync (line)",-28} {clock.Elapsed.TotalMilliseconds / 20,8:0.000} ms");
        }
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < 20; i++)
                await LineAgent.Api.StatusQuery.NextDueAtAsync(conn, CancellationToken.None);
            TestContext.Out.WriteLine($"{"NextDueAt (any line)",-28} {clock.Elapsed.TotalMilliseconds / 20,8:0.000} ms");
        }
        foreach (var q in new[] { "", "status=failed", "type=sms", "lineId=mac-2", "batchId=batch_150", "q=contract", "from=2023-11-20T00:00:00Z&to=2023-11-21T00:00:00Z", "recipient=5550123" })
        {
            var (filter, _) = MessageFilter.Parse(new QueryCollection(q.Length == 0 ? [] : q.Split('&').Select(kv => kv.Split('=', 2))
                .ToDictionary(kv => kv[0], kv => new StringValues(kv[1]))), paging: true);
            var (sql, prm) = filter.ToSql(51);
            await Time($"list {(q.Length == 0 ? "(no filter)" : q)}", sql, prm);
        }
    }
}
