using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The writer lets the WAL grow to <see cref="Db.WalCheckpointPages"/> before a checkpoint. SQLite checkpoints after a
/// commit on whichever connection finds the WAL past its own threshold, so every connection must have the same one:
/// else a request's small write (an Idempotency-Key's answer) copies the writer's WAL into the database.
/// </summary>
public sealed class WalCheckpointTests : LifecycleTestBase
{
    private long MainFilePages() => new FileInfo(_db.Path).Length / 4096;

    [Test]
    public async Task ARequestsWrite_AfterTheWritersCommits_ShouldNotCheckpointTheirWal()
    {
        await _writer.WriteAsync(s => { IdempotencyStore.Insert(s.Connection, s.Transaction, "key-1", "hash", null, 1); return 0; });
        var value = new string('x', 3000);
        // More than SQLite's default of 1,000 WAL pages, fewer than the agent's threshold.
        for (var i = 0; i < 1500; i++)
            await _writer.WriteAsync(s => s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES (@K, @V)", new { K = "k" + i, V = value }, s.Transaction));
        var walPages = new FileInfo(_db.Path + "-wal").Length / (4096 + 24);
        Assert.That(walPages, Is.GreaterThan(1_000).And.LessThan(Db.WalCheckpointPages), "the test's premise");
        var before = MainFilePages();

        // What POST /api/messages awaits before it answers a request with an Idempotency-Key: a pooled connection's commit.
        await new IdempotencyStore(_db, NullLogger<IdempotencyStore>.Instance).SaveResponseAsync("key-1", 201, "{}", CancellationToken.None);

        Assert.That(MainFilePages(), Is.EqualTo(before), "the request's commit copied the writer's WAL into the database");
    }

    [Test]
    public async Task EveryConnection_FreshOrFromThePool_ShouldHaveTheWritersCheckpointThreshold()
    {
        SqliteConnection.ClearAllPools(); // the migration's connection is not the first one asked for
        for (var i = 0; i < 3; i++)
        {
            await using var pooled = await _db.OpenAsync();
            Assert.That(pooled.ExecuteScalar<long>("PRAGMA wal_autocheckpoint"), Is.EqualTo(Db.WalCheckpointPages), $"open {i}");
            using var other = _db.Open(); // a second connection while the first is open: a new SQLite connection
            Assert.That(other.ExecuteScalar<long>("PRAGMA wal_autocheckpoint"), Is.EqualTo(Db.WalCheckpointPages), $"second, open {i}");
        }
    }
}
