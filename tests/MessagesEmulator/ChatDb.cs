using System.Text;
using Microsoft.Data.Sqlite;

namespace MessagesEmulation;

/// <summary>A row's columns in order; only the ones the table has are written.</summary>
internal sealed class Row : List<KeyValuePair<string, object?>>
{
    public void Add(string column, object? value) => Add(new KeyValuePair<string, object?>(column, value));

    public object? this[string column]
    {
        set
        {
            var i = FindIndex(p => p.Key == column);
            if (i >= 0) this[i] = new(column, value);
            else Add(column, value);
        }
    }
}

/// <summary>Writes rows the way Messages does; columns are probed by name (PRAGMA table_info), never assumed.</summary>
internal sealed class ChatDb : IDisposable
{
    /// <summary>Functions that chat.db's triggers call and that only exist inside Messages/imagent.</summary>
    public static readonly string[] MessagesSqlFunctions =
    [
        "verify_chat", "delete_attachment_path", "before_delete_attachment_path", "after_delete_message_plugin",
        "delete_chat_background_before_deleting_chat", "is_mic_enabled", "guid_for_chat",
    ];

    private const int BusyTimeoutSeconds = 10;

    private readonly Dictionary<string, HashSet<string>> _columns = [];

    public ChatDb(SqliteConnection connection) => Connection = connection;

    public SqliteConnection Connection { get; }

    public static string PathIn(string home) => Path.Combine(home, "chat.db");

    /// <summary>
    /// A connection with Messages' trigger functions stubbed, a 10 s busy timeout and no pooling (a rebuilt
    /// chat.db is a new file). Without <paramref name="create"/> a missing file is an error, never a new empty db.
    /// </summary>
    public static SqliteConnection Open(string path, bool create = false)
    {
        path = Path.GetFullPath(path);
        if (!create && !File.Exists(path))
            throw new EmulatorException($"{path} does not exist: run `MessagesEmulator init` first");
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = create ? SqliteOpenMode.ReadWriteCreate : SqliteOpenMode.ReadWrite,
            Pooling = false,
            DefaultTimeout = BusyTimeoutSeconds,
        }.ToString());
        connection.Open();
        foreach (var name in MessagesSqlFunctions)
            connection.CreateFunction<object?>(name, _ => null);
        Exec(connection, $"PRAGMA busy_timeout = {BusyTimeoutSeconds * 1000}");
        return connection;
    }

    public static ChatDb OpenIn(string home) => new(Open(PathIn(home)));

    public void Dispose() => Connection.Dispose();

    public static int Exec(SqliteConnection connection, string sql, params object?[] args)
    {
        using var cmd = Command(connection, sql, args);
        return cmd.ExecuteNonQuery();
    }

    public static object? Scalar(SqliteConnection connection, string sql, params object?[] args)
    {
        using var cmd = Command(connection, sql, args);
        var value = cmd.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    public static SqliteCommand Command(SqliteConnection connection, string sql, params object?[] args)
    {
        var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        for (var i = 0; i < args.Length; i++)
            cmd.Parameters.AddWithValue($"@p{i}", args[i] ?? DBNull.Value);
        return cmd;
    }

    public int Exec(string sql, params object?[] args) => Exec(Connection, sql, args);

    public object? Scalar(string sql, params object?[] args) => Scalar(Connection, sql, args);

    public HashSet<string> Columns(string table)
    {
        if (!_columns.TryGetValue(table, out var set))
        {
            set = [];
            using var cmd = Command(Connection, $"PRAGMA table_info({table})");
            using var r = cmd.ExecuteReader();
            while (r.Read())
                set.Add(r.GetString(1));
            _columns[table] = set;
        }
        return set;
    }

    public long Insert(string table, Row values, string verb = "INSERT")
    {
        var present = Columns(table);
        var pairs = values.Where(p => present.Contains(p.Key)).ToList();
        var sql = new StringBuilder($"{verb} INTO {table} (");
        sql.AppendJoin(", ", pairs.Select(p => p.Key)).Append(") VALUES (");
        sql.AppendJoin(", ", pairs.Select((_, i) => $"@p{i}")).Append(')');
        Exec(sql.ToString(), pairs.Select(p => p.Value).ToArray());
        return (long)Scalar("SELECT last_insert_rowid()")!;
    }

    public void UpdateMessage(long rowid, Row values)
    {
        var present = Columns("message");
        var pairs = values.Where(p => present.Contains(p.Key)).ToList();
        var sets = string.Join(", ", pairs.Select((p, i) => $"{p.Key} = @p{i}"));
        Exec($"UPDATE message SET {sets} WHERE ROWID = @p{pairs.Count}", [.. pairs.Select(p => p.Value), rowid]);
    }

    /// <summary>"26" if the db has macOS 26 tables (service-agnostic `any;-;` chats), else "15".</summary>
    public string SchemaVersion() =>
        Scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chat_service'") is null ? "15" : "26";

    public long EnsureHandle(string address, string service)
    {
        if (Scalar("SELECT ROWID FROM handle WHERE id = @p0 AND service = @p1", address, service) is long id)
            return id;
        var isPhone = !address.Contains('@');
        return Insert("handle", new Row
        {
            { "id", address }, { "country", isPhone ? "us" : null }, { "service", service },
            { "uncanonicalized_id", null }, { "person_centric_id", null },
        });
    }

    public long EnsureChat(string address, string service, long handleId, string account, string myAddress)
    {
        var prefix = SchemaVersion() == "26" ? "any" : service;
        var guid = $"{prefix};-;{address}";
        if (Scalar("SELECT ROWID FROM chat WHERE guid = @p0", guid) is not long chatId)
        {
            chatId = Insert("chat", new Row
            {
                { "guid", guid }, { "style", 45 }, { "state", 3 }, { "account_id", AccountGuid(account) },
                { "chat_identifier", address }, { "service_name", service }, { "account_login", account },
                { "last_addressed_handle", myAddress }, { "is_archived", 0 }, { "is_filtered", 0 }, { "successful_query", 1 },
            });
        }
        Insert("chat_handle_join", new Row { { "chat_id", chatId }, { "handle_id", handleId } }, "INSERT OR IGNORE");
        return chatId;
    }

    public void JoinMessage(long chatId, long messageId, long date) =>
        Insert("chat_message_join", new Row { { "chat_id", chatId }, { "message_id", messageId }, { "message_date", date } });

    /// <summary>Now as Apple's chat.db date: nanoseconds since 2001-01-01T00:00:00Z.</summary>
    public static long NowNs() => ChatDbDates.Now();

    public static long ToAppleNs(DateTimeOffset t) => ChatDbDates.ToAppleNs(t);

    public static string NewGuid() => Guid.NewGuid().ToString("D").ToUpperInvariant();

    /// <summary>A stable GUID per account (Messages keeps one per account).</summary>
    public static string AccountGuid(string account)
    {
        var data = Encoding.UTF8.GetBytes("lineagent-emulator:" + account);
        Span<byte> b = stackalloc byte[16];
        BitConverter.TryWriteBytes(b, Util.Fnv1a(data));
        BitConverter.TryWriteBytes(b[8..], Util.Fnv1a(data, 0x9E3779B97F4A7C15UL));
        return Util.FormatUuid(b, 3);
    }

    /// <summary>The `id` of a service's account in the scripting dictionary (its scriptUniqueId): a GUID per account, RCS's its own.</summary>
    public static string AccountId(string service, string me, string smsNumber) =>
        AccountGuid(service == "RCS" ? "R:" + smsNumber : AccountFor(service, me, smsNumber).Account);

    /// <summary>(account column value, my address) for a service.</summary>
    public static (string Account, string MyAddress) AccountFor(string service, string me, string smsNumber) =>
        service == "iMessage" ? ("E:" + me, me) : ("P:" + smsNumber, smsNumber);
}

/// <summary>Apple's chat.db dates: nanoseconds since 2001-01-01T00:00:00Z.</summary>
public static class ChatDbDates
{
    public const long AppleEpochUnix = 978307200;

    public static long ToAppleNs(DateTimeOffset t) => (t.UtcTicks - DateTime.UnixEpoch.Ticks) * 100 - AppleEpochUnix * 1_000_000_000;

    public static long Now() => ToAppleNs(DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(OffsetMs));

    /// <summary>control.json `clockOffsetMs`: Messages' clock runs this far from real time (a test whose agent runs on a fake clock moves both).</summary>
    public static double OffsetMs { get; set; }
}
