using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>Opens connections to the agent's SQLite file: one connection per unit of work.</summary>
public sealed class Db
{
    private readonly string _connectionString;
    private readonly bool _fullFsync;

    /// <summary>
    /// On macOS, fsync() leaves the data in the drive's cache, where a power cut loses it; only F_FULLFSYNC flushes
    /// it (Apple's fsync(2) man page; SQLite's PRAGMA fullfsync). SQLite's default is off, so synchronous=FULL alone
    /// would not keep "on disk before it is answered" on a Mac. .NET's own file flush already uses F_FULLFSYNC there.
    /// </summary>
    public static readonly bool FullFsyncByDefault = OperatingSystem.IsMacOS();

    private const string FullFsyncPragmas = "PRAGMA fullfsync=ON; PRAGMA checkpoint_fullfsync=ON;";

    /// <summary>
    /// The WAL is checkpointed once it holds 10,000 pages (40 MB), not SQLite's 1,000: a page that every commit changes
    /// (the right edge of each index) is copied to the database once per checkpoint, and the database file is synced
    /// once, so fewer checkpoints write less (bench, POST load, 5 s of the writer: pwrite 418,000 -> 388,000-405,000,
    /// pread 75,000 -> 44,000-48,000; requests/s +3-8 %, four runs each). Every connection needs the same threshold:
    /// SQLite checkpoints after a commit on whichever connection finds the WAL past its own, and a connection left at
    /// 1,000 would do the writer's checkpoint inside an HTTP request (a review showed it for the Idempotency-Key's
    /// answer). A WAL that one large transaction (a bulk) grew past 64 MB is cut back to that after the next
    /// checkpoint; the usual 40 MB is kept, as cutting it back at every checkpoint cost the writer 1.3 % of its time in
    /// ftruncate (perf).
    /// </summary>
    internal const int WalCheckpointPages = 10_000;

    private const string WalPragmas = "PRAGMA wal_autocheckpoint=10000; PRAGMA journal_size_limit=67108864;";

    /// <summary>The SQLite connections (a pooled connection keeps its handle) that have had <see cref="WalPragmas"/>.</summary>
    private static readonly ConditionalWeakTable<SQLitePCL.sqlite3, object> Configured = new();

    public Db(string path) : this(path, FullFsyncByDefault)
    {
    }

    public Db(string path, bool fullFsync)
    {
        _fullFsync = fullFsync;
        Path = path;
        Presence = new DatabasePresence(path);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
            ForeignKeys = true,
        }.ToString();
    }

    public string Path { get; }

    /// <summary>Whether the file is still where it was opened (<see cref="GuardCommits"/>, <see cref="DataDirWatch"/>).</summary>
    public DatabasePresence Presence { get; }

    private volatile bool _guardCommits;

    /// <summary>
    /// Set once the agent runs on this database: from then on, a commit on any of its connections (the writer's, a store's
    /// pooled one) first looks that the file is still there, and is rolled back when it was deleted under the agent
    /// (SQLite's commit hook: SQLITE_CONSTRAINT_COMMITHOOK, <see cref="DatabasePresence.IsGone"/>). A stat per commit; reads
    /// commit nothing and are not asked. Set only by the agent's storage services (off for the CLI's tools and most tests).
    /// </summary>
    public bool GuardCommits
    {
        get => _guardCommits;
        set => _guardCommits = value;
    }

    /// <summary>
    /// Messages left out of the search indexes could not be added at start (the disk refused the write): the writer owes
    /// them (MessageStore.SearchIndex) until it can.
    /// </summary>
    public bool SearchIndexBehind { get; internal set; }

    /// <summary>
    /// A pooled connection. Nothing is run per open (on macOS: fullfsync, see <see cref="FullFsyncByDefault"/>; the WAL's
    /// checkpoint threshold once per SQLite connection, <see cref="WalCheckpointPages"/>): foreign keys come from the connection string, SQLite's
    /// default synchronous is FULL, journal_mode=WAL is persistent (set by the migrator), and a busy database
    /// is waited out by Microsoft.Data.Sqlite for DefaultTimeout. Messages are written by <see cref="DbWriter"/>
    /// on its own connection.
    /// </summary>
    public async Task<SqliteConnection> OpenAsync(CancellationToken ct = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(ct);
        Configure(connection);
        if (_fullFsync)
            SetFullFsync(connection);
        return connection;
    }

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        Configure(connection);
        if (_fullFsync)
            SetFullFsync(connection);
        return connection;
    }

    /// <summary>
    /// <see cref="WalPragmas"/> and the commit guard once per SQLite connection: not per open of a pooled one (a statement
    /// per request).
    /// </summary>
    private void Configure(SqliteConnection connection)
    {
        if (connection.Handle is not { } handle || Configured.TryGetValue(handle, out _))
            return;
        using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = WalPragmas;
            cmd.ExecuteNonQuery();
        }
        SQLitePCL.raw.sqlite3_commit_hook(handle, OnCommit, this);
        Configured.AddOrUpdate(handle, handle);
    }

    /// <summary>SQLite's commit hook: non-zero turns the commit into a rollback. Runs inside SQLite: must not throw.</summary>
    private static int OnCommit(object user)
    {
        var db = (Db)user;
        if (!db._guardCommits)
            return 0;
        // Decided before the listeners run: one that throws must not let the commit through.
        var gone = !db.Presence.IsThere();
        if (gone)
        {
            try { db.Presence.RaiseMissed(); }
            catch { /* the watch looks again at its next check */ }
        }
        return gone ? 1 : 0;
    }

    /// <summary>Per open (macOS only): a pooled connection keeps it, but the pool gives no hook for its first open.</summary>
    private static void SetFullFsync(SqliteConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = FullFsyncPragmas;
        cmd.ExecuteNonQuery();
    }
}

/// <summary>
/// A list of any length as one SQL parameter: a JSON array that the statement reads with
/// <c>IN (SELECT value FROM json_each(@P))</c>. One prepared statement for 10,000 addresses instead of
/// 20 statements of 500 generated parameters each (Dapper's <c>IN @P</c> expansion).
/// </summary>
public static class SqlList
{
    public static string Of(IEnumerable<string> items) => System.Text.Json.JsonSerializer.Serialize(items as string[] ?? items.ToArray());
}
