using LineAgent.Bridge.ChatDb;
using Microsoft.Data.Sqlite;

namespace LineAgent.Tests.Support;

/// <summary>A chat.db made from one of Apple's schemas (fixtures), with rows written as Messages writes them.</summary>
public sealed class ChatDbBuilder : IDisposable
{
    private static readonly string[] MessagesOnlyFunctions =
    [
        "verify_chat", "delete_attachment_path", "before_delete_attachment_path", "after_delete_message_plugin",
        "delete_chat_background_before_deleting_chat", "is_mic_enabled", "guid_for_chat",
    ];

    public ChatDbBuilder(string path, int macOsVersion)
    {
        Path = path;
        Connection = new SqliteConnection($"Data Source={path};Pooling=False");
        Connection.Open();
        RegisterFunctions(Connection);
        Execute("PRAGMA journal_mode=WAL;");
        Execute(File.ReadAllText(Fixtures.Path($"chatdb/schema-macos{macOsVersion}.sql")));
    }

    public string Path { get; }
    public SqliteConnection Connection { get; }

    public static void RegisterFunctions(SqliteConnection c)
    {
        foreach (var name in MessagesOnlyFunctions)
            c.CreateFunction(name, (object?[] _) => (object?)null, isDeterministic: false);
    }

    public void Execute(string sql)
    {
        using var cmd = Connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public long Handle(string id, string service = "iMessage")
    {
        using var find = Connection.CreateCommand();
        find.CommandText = "SELECT ROWID FROM handle WHERE id = @id AND service = @s";
        find.Parameters.AddWithValue("@id", id);
        find.Parameters.AddWithValue("@s", service);
        if (find.ExecuteScalar() is long existing)
            return existing;
        using var cmd = Connection.CreateCommand();
        cmd.CommandText = "INSERT INTO handle (id, service) VALUES (@id, @s) RETURNING ROWID";
        cmd.Parameters.AddWithValue("@id", id);
        cmd.Parameters.AddWithValue("@s", service);
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Inserts a message row by column name; text goes to attributedBody (text NULL) as on Ventura and later.</summary>
    public long Message(string handle, string? text, bool fromMe, string service = "iMessage", long error = 0, bool sent = false,
        bool delivered = false, DateTimeOffset? date = null, DateTimeOffset? read = null, bool plainTextColumn = false, SqliteTransaction? tx = null)
    {
        var handleId = Handle(handle, service);
        using var cmd = Connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            INSERT INTO message (guid, text, attributedBody, handle_id, service, is_from_me, error, is_sent, is_finished, is_delivered, date, date_read, date_delivered)
            VALUES (@guid, @text, @body, @handle, @service, @fromMe, @error, @sent, @finished, @delivered, @date, @read, 0)
            RETURNING ROWID
            """;
        cmd.Parameters.AddWithValue("@guid", Guid.NewGuid().ToString().ToUpperInvariant());
        cmd.Parameters.AddWithValue("@text", plainTextColumn ? text ?? (object)DBNull.Value : DBNull.Value);
        cmd.Parameters.AddWithValue("@body", !plainTextColumn && text is not null ? TypedStream.Encode(text) : DBNull.Value);
        cmd.Parameters.AddWithValue("@handle", handleId);
        cmd.Parameters.AddWithValue("@service", service);
        cmd.Parameters.AddWithValue("@fromMe", fromMe ? 1 : 0);
        cmd.Parameters.AddWithValue("@error", error);
        cmd.Parameters.AddWithValue("@sent", sent ? 1 : 0);
        cmd.Parameters.AddWithValue("@finished", sent || error != 0 || !fromMe ? 1 : 0);
        cmd.Parameters.AddWithValue("@delivered", delivered ? 1 : 0);
        cmd.Parameters.AddWithValue("@date", AppleTime.ToAppleNanoseconds(date ?? DateTimeOffset.UtcNow));
        cmd.Parameters.AddWithValue("@read", read is { } r ? AppleTime.ToAppleNanoseconds(r) : 0);
        return (long)cmd.ExecuteScalar()!;
    }

    public void Dispose()
    {
        Connection.Dispose();
        SqliteConnection.ClearAllPools();
    }
}

/// <summary>Encodes text the way Messages stores it in attributedBody, from the Edited.bin sample's framing.</summary>
public static class TypedStream
{
    private static readonly byte[] Sample = File.ReadAllBytes(Fixtures.Path("chatdb/attributed-body/Edited.bin"));

    public static byte[] Encode(string text)
    {
        var marker = Sample.AsSpan().IndexOf("\u0001+"u8);
        var prefix = Sample.AsSpan(0, marker + 2).ToArray();
        var suffix = Sample.AsSpan(marker + 3 + 6).ToArray(); // after 01 2B 06 "Edited"
        var utf8 = System.Text.Encoding.UTF8.GetBytes(text);
        using var ms = new MemoryStream();
        ms.Write(prefix);
        ms.Write(Length(utf8.Length));
        ms.Write(utf8);
        ms.Write(suffix);
        return ms.ToArray();
    }

    public static byte[] Length(int n) => n switch
    {
        < 0x80 => [(byte)n],
        <= ushort.MaxValue => [0x81, (byte)n, (byte)(n >> 8)],
        _ => [0x82, (byte)n, (byte)(n >> 8), (byte)(n >> 16), (byte)(n >> 24)],
    };
}

public static class Fixtures
{
    public static string Path(string relative) => System.IO.Path.Combine(AppContext.BaseDirectory, "fixtures", relative);
}
