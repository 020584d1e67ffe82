using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Support;

/// <summary>
/// For tests of the writer and the lifecycle without a host: per test, a migrated database in a temp folder with the
/// agent's writer and lifecycle on it, and a fake clock.
/// </summary>
public abstract class LifecycleTestBase
{
    protected TempDir _dir = null!;
    protected Db _db = null!;
    protected DbWriter _writer = null!;
    protected MessageLifecycle _lifecycle = null!;
    protected readonly FakeTimeProvider _time = new(AgentFactory.Epoch);

    [SetUp]
    public void SetUpLifecycle()
    {
        Dapper.DefaultTypeMap.MatchNamesWithUnderscores = true; // as the agent sets it at start
        _dir = new TempDir();
        _db = new Db(_dir.File("lineagent.db"));
        Migrator.Migrate(_db);
        _writer = new DbWriter(_db, NullLogger<DbWriter>.Instance);
        _lifecycle = new MessageLifecycle(_writer, new MessageStore(_db, new MessageNotifier()), _time);
    }

    [TearDown]
    public async Task TearDownLifecycle()
    {
        await _writer.DisposeAsync();
        _dir.Dispose();
    }
}
