using System.Diagnostics;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// A benchmark, not a test (run it with --filter Name~QuickCheckOnAMillionRows): how long the start-up check
/// (PRAGMA quick_check), a backup (VACUUM INTO + its quick_check) and a restore take on 1,000,000 messages.
/// 2 shared cores, 2026-12-04: 524 MB; check 4.5-4.9 s; backup 6.5 s; restore 10.6 s (mmap_size or a bigger cache did not help the check).
/// </summary>
[Explicit("benchmark: fills 1,000,000 rows")]
public sealed class QuickCheckBenchmark
{
    [Test]
    public void QuickCheckOnAMillionRows()
    {
        using var dir = new TempDir();
        var path = dir.File("lineagent.db");
        var db = DatabaseStartup.Open(path, new StorageOptions(), TimeProvider.System, NullLogger.Instance);
        var fill = Stopwatch.StartNew();
        using (var c = db.Open())
        using (var tx = c.BeginTransaction())
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO messages (id, content, type, requested_type, status, line_id, batch_id, recipient_phone, recipient_name,
                                      due_at, sent_at, created_at, updated_at)
                VALUES (@id, @content, @type, 'auto', @status, @line, @batch, @phone, @name, @due, @sent, @due, @due)
                """;
            var p = new[] { "@id", "@content", "@type", "@status", "@line", "@batch", "@phone", "@name", "@due", "@sent" }
                .Select(n => cmd.Parameters.Add(new SqliteParameter(n, null))).ToArray();
            cmd.Prepare();
            var t0 = 1_700_000_000_000L;
            for (var i = 0; i < 1_000_000; i++)
            {
                p[0].Value = $"msg_{i:D10}";
                p[1].Value = $"Hi Lead {i}, the demo number {i} is ready: see you on Thursday at the office";
                p[2].Value = i % 3 == 0 ? "sms" : "imessage";
                p[3].Value = i % 17 == 0 ? "failed" : "sent";
                p[4].Value = $"mac-{i % 4}";
                p[5].Value = $"batch_{i / 5000}";
                p[6].Value = $"+1202{5000000 + i % 900000:0000000}";
                p[7].Value = $"Lead {i}";
                p[8].Value = t0 + i * 1000L;
                p[9].Value = t0 + i * 1000L;
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
        SqliteConnection.ClearAllPools();
        TestContext.Out.WriteLine($"filled 1,000,000 rows in {fill.Elapsed.TotalSeconds:0.0} s; {new FileInfo(path).Length / 1048576.0:0} MB");

        for (var run = 1; run <= 3; run++)
        {
            var check = DatabaseFile.Inspect(path);
            Assert.That(check.Ok, Is.True, check.Problem);
            TestContext.Out.WriteLine($"start-up check (header + quick_check + user_version), run {run}: {check.Elapsed.TotalMilliseconds:0} ms");
        }
        var started = Stopwatch.StartNew();
        var reopened = DatabaseStartup.Open(path, new StorageOptions(), TimeProvider.System, NullLogger.Instance);
        TestContext.Out.WriteLine($"DatabaseStartup.Open (check + migrate, nothing to migrate): {started.Elapsed.TotalMilliseconds:0} ms");
        SqliteConnection.ClearAllPools();

        started.Restart();
        var backup = DatabaseBackups.Create(reopened.Path, DateTimeOffset.UtcNow, keep: 7);
        TestContext.Out.WriteLine($"backup (VACUUM INTO + flush + quick_check of the copy): {started.Elapsed.TotalMilliseconds:0} ms, {backup.Bytes / 1048576.0:0} MB");

        started.Restart();
        var output = new StringWriter();
        Assert.That(new DatabaseRestore(dir.Path, output, output, TimeProvider.System).Run(backup.Name), Is.Zero, output.ToString());
        TestContext.Out.WriteLine($"restore (copy + quick_check + count): {started.Elapsed.TotalMilliseconds:0} ms");
    }
}
