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

    public Db(string path) : this(path, FullFsyncByDefault)
    {
    }

    public Db(string path, bool fullFsync)
    {
        _fullFsync = fullFsync;
        Path = path;
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

    /// <summary>
    /// Messages left out of the search indexes could not be added at start (the disk refused the write): the writer owes
    /// them (MessageStore.SearchIndex) until it can.
    /// </summary>
    public bool SearchIndexBehind { get; internal set; }

    /// <summary>
    /// A pooled connection. Nothing is run per open (on macOS: fullfsync, see <see cref="FullFsyncByDefault"/>): foreign keys come from the connection string, SQLite's
    /// default synchronous is FULL, journal_mode=WAL is persistent (set by the migrator), and a busy database
    /// is waited out by Microsoft.Data.Sqlite for DefaultTimeout. Messages are written by <see cref="DbWriter"/>
    /// on its own connection.
    /// </summary>
    public async Task<SqliteConnection> OpenAsync(CancellationToken ct = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(ct);
        if (_fullFsync)
            SetFullFsync(connection);
        return connection;
    }

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        if (_fullFsync)
            SetFullFsync(connection);
        return connection;
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
