using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// Upkeep the writer puts off (DeferredWork): done once a batch is owed, after its idle time, when a reader asks
/// (CatchUpAsync), and at a clean stop; a failure stays owed and is tried again. Each test's work writes a row of its
/// own, so a run is seen in the database; an idle time of an hour means that path cannot be the one that ran it.
/// </summary>
public sealed class DeferredWorkTests : MigratedDatabaseTest
{
    private int _runs;
    private int _failures;

    [SetUp]
    public void Reset() => (_runs, _failures) = (0, 0); // NUnit keeps one instance for the fixture

    private DeferredWork Work(int batch, TimeSpan idle) => new("test upkeep", s =>
    {
        if (_failures > 0)
        {
            _failures--;
            throw new SqliteException("database or disk is full", 13);
        }
        Interlocked.Increment(ref _runs);
        s.Connection.Execute("INSERT OR REPLACE INTO bridge_state (key, value) VALUES ('upkeep', @N)", new { N = _runs.ToString() }, s.Transaction);
    }, batch, idle);

    private static Task Owe(DbWriter writer, DeferredWork work, int rows) => writer.WriteAsync(s => { s.Owe(work, rows); return 0; });

    private async Task<string?> StoredAsync()
    {
        await using var c = await Db.OpenAsync();
        return await c.ExecuteScalarAsync<string?>("SELECT value FROM bridge_state WHERE key = 'upkeep'");
    }

    [Test]
    public async Task AFullBatch_ShouldBeDoneAfterItsCommit_WithoutWaitingForIdle()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);
        var work = Work(batch: 10, idle: TimeSpan.FromHours(1));
        await Owe(writer, work, 9);
        Assert.That(writer.OwedRows, Is.EqualTo(9));
        await Owe(writer, work, 3);
        await Eventually.TrueAsync(() => writer.OwedRows == 0, "the batch to be done");
        Assert.That(_runs, Is.EqualTo(1));
        Assert.That(await StoredAsync(), Is.EqualTo("1"), "committed");
    }

    [Test]
    public async Task LessThanABatch_ShouldBeDoneOnceTheWriterIsIdle()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);
        await Owe(writer, Work(batch: 1_000, idle: TimeSpan.FromMilliseconds(50)), 1);
        await Eventually.TrueAsync(() => writer.OwedRows == 0, "the idle writer to do it");
        Assert.That(_runs, Is.EqualTo(1));
    }

    [Test]
    public async Task CatchUp_ShouldDoWhatIsOwed_AndNothingWhenNothingIs()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);
        var work = Work(batch: 1_000, idle: TimeSpan.FromHours(1));
        await writer.CatchUpAsync(work);
        Assert.That(_runs, Is.Zero, "nothing owed: no transaction");
        await Owe(writer, work, 5);
        await writer.CatchUpAsync(work);
        Assert.That(_runs, Is.EqualTo(1));
        Assert.That(writer.OwedRows, Is.Zero, "done when the catch-up returns");
        Assert.That(await StoredAsync(), Is.EqualTo("1"));
    }

    [Test]
    public async Task AFailure_ShouldStayOwed_AndBeTriedAgain()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);
        _failures = 2;
        await Owe(writer, Work(batch: 1, idle: TimeSpan.FromMilliseconds(50)), 1);
        await Eventually.TrueAsync(() => writer.OwedRows == 0, "the third try to succeed");
        Assert.That(_failures, Is.Zero, "two failed tries");
        Assert.That(_runs, Is.EqualTo(1));
        Assert.That(await StoredAsync(), Is.EqualTo("1"));
    }

    [Test]
    public async Task AFailedCatchUp_ShouldRefuseOnlyItself()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);
        var work = Work(batch: 1_000, idle: TimeSpan.FromHours(1));
        await Owe(writer, work, 1);
        _failures = 1;
        var catchUp = writer.CatchUpAsync(work);
        var other = writer.WriteAsync(s => s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES ('other', 'kept')", transaction: s.Transaction));
        Assert.ThrowsAsync<SqliteException>(async () => await catchUp);
        Assert.That(await other, Is.EqualTo(1), "a unit queued with it is committed");
        Assert.That(writer.OwedRows, Is.EqualTo(1), "still owed");
    }

    [Test]
    public async Task ACleanStop_ShouldDoWhatIsOwed()
    {
        var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance);
        await Owe(writer, Work(batch: 1_000, idle: TimeSpan.FromHours(1)), 1);
        await writer.DisposeAsync();
        Assert.That(_runs, Is.EqualTo(1));
        Assert.That(await StoredAsync(), Is.EqualTo("1"));
    }
}
