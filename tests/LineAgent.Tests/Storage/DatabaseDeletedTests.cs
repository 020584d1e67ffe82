using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// lineagent.db deleted under a running agent (its data directory removed to start afresh): a commit then reaches only the
/// deleted file, which no later start finds, and was answered as stored. With <see cref="Db.GuardCommits"/> (the agent sets
/// it) every commit looks first and is rolled back instead.
/// </summary>
public sealed class DatabaseDeletedTests : MigratedDatabaseTest
{
    private int _missed;

    [SetUp]
    public void Guard()
    {
        Db.GuardCommits = true;
        _missed = 0; // NUnit keeps one instance of the fixture for all its tests
        Db.Presence.Missed += () => Interlocked.Increment(ref _missed);
    }

    [Test]
    public async Task TheWritersCommitAfterTheDatabaseWasDeleted_ShouldBeRefused_AndMakeNoNewFile()
    {
        var health = new StorageHealth(TimeProvider.System);
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, health);
        await writer.WriteAsync(s => s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES ('a', '1')", transaction: s.Transaction));
        Assert.That(_missed, Is.Zero);

        DatabaseFile.DeleteWithCompanions(Db.Path);

        // The writer's connection is still open on the deleted file: before, this committed there and was answered as stored.
        var refused = Assert.CatchAsync(async () =>
            await writer.WriteAsync(s => s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES ('b', '2')", transaction: s.Transaction)));
        Assert.That(DatabasePresence.IsGone(refused), Is.True, refused!.ToString());
        Assert.That(health.State.Code, Is.EqualTo("storage_error"));
        Assert.That(_missed, Is.EqualTo(1));

        // Nor does the next write open a new connection, which would make a new empty lineagent.db in its place.
        Assert.ThrowsAsync<DatabaseGoneException>(async () =>
            await writer.WriteAsync(s => s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES ('c', '3')", transaction: s.Transaction)));
        Assert.That(File.Exists(Db.Path), Is.False, "a new lineagent.db was made in the deleted one's place");
        Assert.That(_missed, Is.EqualTo(2));
    }

    /// <summary>A group of several units, one of them refused (so the group runs again with a savepoint per unit): the commit is refused as well.</summary>
    [Test]
    public async Task AGroupWrittenWithSavepoints_AfterTheDatabaseWasDeleted_ShouldBeRefusedWhole()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);

        // Queued while the writer is busy with the first unit, so the next two share one group; the database goes while it runs.
        var gate = new ManualResetEventSlim();
        var blocker = writer.WriteAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)), alone: true);
        var good = writer.WriteAsync(s =>
        {
            DatabaseFile.DeleteWithCompanions(Db.Path);
            return s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES ('b', '2')", transaction: s.Transaction);
        });
        var bad = writer.WriteAsync<int>(_ => throw new InvalidOperationException("refused on its own"));
        gate.Set();
        Assert.That(await blocker, Is.True);
        Assert.That(DatabasePresence.IsGone(Assert.CatchAsync(async () => await good)), Is.True);
        Assert.That(async () => await bad, Throws.InstanceOf<Exception>());
        Assert.That(writer.Counters.Units, Is.EqualTo(1), "only the first unit was committed");
    }

    /// <summary>The stores that write on a pooled connection (webhooks, suppressions, leads) are refused as the writer is.</summary>
    [Test]
    public async Task AWriteOnAPooledConnection_AfterTheDatabaseWasDeleted_ShouldBeRefused()
    {
        await using (var c = await Db.OpenAsync())
            await c.ExecuteAsync("INSERT INTO bridge_state (key, value) VALUES ('a', '1')");
        await using var open = await Db.OpenAsync(); // the pooled connection, open on the file before it goes
        DatabaseFile.DeleteWithCompanions(Db.Path);

        var autocommit = Assert.CatchAsync(async () => await open.ExecuteAsync("INSERT INTO bridge_state (key, value) VALUES ('b', '2')"));
        Assert.That(DatabasePresence.IsGone(autocommit), Is.True, autocommit!.ToString());
        Assert.That(StorageHealth.FaultOf(autocommit), Is.EqualTo(StorageState.Error));

        await using (var tx = await open.BeginTransactionAsync())
        {
            await open.ExecuteAsync("INSERT INTO bridge_state (key, value) VALUES ('c', '3')", transaction: tx);
            var commit = Assert.CatchAsync(async () => await tx.CommitAsync());
            Assert.That(DatabasePresence.IsGone(commit), Is.True, commit!.ToString());
        }
        Assert.That(_missed, Is.EqualTo(2));

        // Reads commit nothing: they go on (on the deleted file) without a look.
        Assert.That(await open.ExecuteScalarAsync<string>("SELECT value FROM bridge_state WHERE key = 'a'"), Is.EqualTo("1"));
        Assert.That(_missed, Is.EqualTo(2));
    }

    [Test]
    public async Task WithoutTheGuard_ACommitOnTheDeletedFile_ShouldGoOnAsBefore()
    {
        Db.GuardCommits = false; // restore and the tools that move the file on purpose
        await using var open = await Db.OpenAsync();
        DatabaseFile.DeleteWithCompanions(Db.Path);
        Assert.That(await open.ExecuteAsync("INSERT INTO bridge_state (key, value) VALUES ('b', '2')"), Is.EqualTo(1));
        Assert.That(_missed, Is.Zero);
    }

    [Test]
    public void TheDatabaseEmptiedUnderTheSameName_ShouldCountAsGone()
    {
        Assert.That(Db.Presence.IsThere(), Is.True);
        DatabaseFile.DeleteWithCompanions(Db.Path);
        File.WriteAllBytes(Db.Path, []);
        Assert.That(Db.Presence.IsThere(), Is.False);
        Assert.Throws<DatabaseGoneException>(Db.Presence.EnsureThere);
    }

    [Test]
    public void IsGone_ShouldKnowTheGuardsRefusal_AndNothingElse()
    {
        Assert.That(DatabasePresence.IsGone(new SqliteException("constraint failed", 19, DatabasePresence.RefusedCommit)), Is.True);
        Assert.That(DatabasePresence.IsGone(new InvalidOperationException("wrapped", new DatabaseGoneException("x"))), Is.True);
        Assert.That(DatabasePresence.IsGone(new SqliteException("UNIQUE constraint failed", 19, 2067)), Is.False);
        Assert.That(DatabasePresence.IsGone(new SqliteException("database or disk is full", 13)), Is.False);
    }
}
