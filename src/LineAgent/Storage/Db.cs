using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>Opens connections to the agent's SQLite file: one connection per unit of work.</summary>
public sealed class Db
{
    private readonly string _connectionString;

    public Db(string path)
    {
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
    /// A pooled connection. Nothing is run per open: foreign keys come from the connection string, SQLite's
    /// default synchronous is FULL, journal_mode=WAL is persistent (set by the migrator), and a busy database
    /// is waited out by Microsoft.Data.Sqlite for DefaultTimeout. Messages are written by <see cref="DbWriter"/>
    /// on its own connection.
    /// </summary>
    public async Task<SqliteConnection> OpenAsync(CancellationToken ct = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(ct);
        return connection;
    }

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
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
