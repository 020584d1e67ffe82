using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// /api/status tells the truth about the disk: a unit the writer refused because the disk is full leaves the storage
/// `full`, although the transaction itself committed; the next write that succeeds clears it.
/// </summary>
public sealed class WriterStorageHealthTests : MigratedDatabaseTest
{
    [Test]
    public async Task AUnitRefusedForAFullDisk_ShouldLeaveTheStorageFull_UntilAWriteSucceeds()
    {
        var health = new StorageHealth(TimeProvider.System);
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, health);

        // SQLITE_FULL from one of the unit's own statements (a page spill of a large unit), not from BEGIN or COMMIT.
        var full = writer.WriteAsync<int>(_ => throw new SqliteException("database or disk is full", 13));
        Assert.ThrowsAsync<SqliteException>(async () => await full);
        Assert.That(health.State.State, Is.EqualTo(StorageState.Full));

        await writer.WriteAsync(s => s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES ('k', 'v')", transaction: s.Transaction));
        Assert.That(health.State.State, Is.EqualTo(StorageState.Ok));
    }

    [TestCase(11, Description = "SQLITE_CORRUPT")]
    [TestCase(26, Description = "SQLITE_NOTADB")]
    public async Task ADatabaseDamagedWhileRunning_ShouldShowAsAStorageError(int code)
    {
        // Before, damage found while running was no storage fault: /api/status said ok and requests got a 500 internal_error.
        var health = new StorageHealth(TimeProvider.System);
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, health);
        Assert.ThrowsAsync<SqliteException>(async () => await writer.WriteAsync<int>(_ => throw new SqliteException("database disk image is malformed", code)));
        Assert.That(health.State.State, Is.EqualTo(StorageState.Error));
        Assert.That(health.State.Code, Is.EqualTo("storage_error"));
    }

    /// <summary>
    /// A unit refused for something else (a bulk whose plan failed and was rolled back) wrote nothing, so it says nothing
    /// about the disk: a `full` from before stays until a write succeeds (a review found it cleared).
    /// </summary>
    [Test]
    public async Task AUnitRefusedForAnotherReason_AfterAFullDisk_ShouldLeaveTheStorageFull()
    {
        var health = new StorageHealth(TimeProvider.System);
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, health);
        Assert.ThrowsAsync<SqliteException>(async () => await writer.WriteAsync<int>(_ => throw new SqliteException("database or disk is full", 13)));
        Assert.That(health.State.State, Is.EqualTo(StorageState.Full));

        Assert.ThrowsAsync<InvalidOperationException>(async () => await writer.WriteAsync<int>(_ => throw new InvalidOperationException("the plan failed")));

        Assert.That(health.State.State, Is.EqualTo(StorageState.Full));
    }

    /// <summary>As above for a group of several units that were all refused (each rolled back to its savepoint): the empty
    /// commit wrote nothing either (a review found it reported ok).</summary>
    [Test]
    public async Task AGroupWhoseUnitsWereAllRefused_AfterAFullDisk_ShouldLeaveTheStorageFull()
    {
        var health = new StorageHealth(TimeProvider.System);
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, health);
        using var started = new ManualResetEventSlim();
        using var gate = new ManualResetEventSlim();
        // Holds the writer until the next two are queued, so they come as one group; then refused for a full disk.
        var full = writer.WriteAsync<int>(_ =>
        {
            started.Set();
            gate.Wait(TimeSpan.FromSeconds(30));
            throw new SqliteException("database or disk is full", 13);
        });
        Assert.That(started.Wait(TimeSpan.FromSeconds(30)), Is.True, "the first unit started");
        var a = writer.WriteAsync<int>(_ => throw new InvalidOperationException("refused a"));
        var b = writer.WriteAsync<int>(_ => throw new InvalidOperationException("refused b"));
        gate.Set();

        Assert.ThrowsAsync<SqliteException>(async () => await full);
        Assert.ThrowsAsync<InvalidOperationException>(async () => await a);
        Assert.ThrowsAsync<InvalidOperationException>(async () => await b);
        Assert.That(writer.Counters, Is.EqualTo((2L, 3L)), "the two refused units came as one group");
        Assert.That(health.State.State, Is.EqualTo(StorageState.Full));
    }

    [Test]
    public async Task AUnitRefusedForAnotherReason_ShouldNotTouchTheStorageState()
    {
        var health = new StorageHealth(TimeProvider.System);
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, health);
        Assert.ThrowsAsync<InvalidOperationException>(async () => await writer.WriteAsync<int>(_ => throw new InvalidOperationException("a bug")));
        Assert.That(health.State.State, Is.EqualTo(StorageState.Ok));
    }
}
