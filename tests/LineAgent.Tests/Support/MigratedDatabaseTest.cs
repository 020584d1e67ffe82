using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Tests.Support;

/// <summary>A fresh, migrated agent database in its own temp dir for each test (the writer's and storage tests).</summary>
public abstract class MigratedDatabaseTest
{
    protected TempDir Dir { get; private set; } = null!;
    protected Db Db { get; private set; } = null!;

    [SetUp]
    public void CreateDatabase()
    {
        Dir = new TempDir();
        Db = new Db(Dir.File("lineagent.db"));
        Migrator.Migrate(Db);
    }

    [TearDown]
    public void RemoveDatabase()
    {
        SqliteConnection.ClearAllPools(); // pooled connections keep the files open
        Dir.Dispose();
    }
}
