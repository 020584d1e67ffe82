using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>On a Mac, "on disk before it is answered" needs F_FULLFSYNC: every connection of the agent asks SQLite for it.</summary>
public sealed class DbDurabilityTests
{
    [Test]
    public void FullFsync_ShouldBeTheDefaultExactlyOnMacOS()
    {
        Assert.That(Db.FullFsyncByDefault, Is.EqualTo(OperatingSystem.IsMacOS()));
    }

    [Test]
    public async Task ADbWithFullFsync_ShouldSetItOnEveryConnection_TheWritersToo()
    {
        using var dir = new TempDir();
        var db = new Db(dir.File("lineagent.db"), fullFsync: true);
        Migrator.Migrate(db);
        await using (var c = await db.OpenAsync())
            Assert.That((await c.ExecuteScalarAsync<long>("PRAGMA fullfsync"), await c.ExecuteScalarAsync<long>("PRAGMA checkpoint_fullfsync")),
                Is.EqualTo((1L, 1L)));
        await using (var writer = new DbWriter(db, NullLogger<DbWriter>.Instance))
            Assert.That(await writer.WriteAsync(s => s.Connection.ExecuteScalar<long>("PRAGMA fullfsync", transaction: s.Transaction)), Is.EqualTo(1L));
        using (var c = db.Open())
            Assert.That(c.ExecuteScalar<long>("PRAGMA fullfsync"), Is.EqualTo(1L));
        SqliteConnection.ClearAllPools();
    }

    [Test]
    public async Task ADbWithoutFullFsync_ShouldLeaveSQLitesDefault()
    {
        using var dir = new TempDir();
        var db = new Db(dir.File("lineagent.db"), fullFsync: false);
        await using (var c = await db.OpenAsync())
            Assert.That(await c.ExecuteScalarAsync<long>("PRAGMA fullfsync"), Is.Zero);
        SqliteConnection.ClearAllPools();
    }
}
