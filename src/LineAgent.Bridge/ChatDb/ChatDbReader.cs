using Microsoft.Data.Sqlite;

namespace LineAgent.Bridge.ChatDb;

/// <summary>Whether the agent can read chat.db (Full Disk Access on macOS).</summary>
/// <summary>How chat.db can be read. <see cref="Unreadable"/>: for the moment (busy, changed under the agent); <see cref="Damaged"/>:
/// a file SQLite cannot read as a database (not one, or malformed).</summary>
public enum ChatDbAccess { Ok, Missing, Denied, Unreadable, Damaged }

public sealed class ChatDbUnavailableException(ChatDbAccess access, string message, Exception? inner = null) : Exception(message, inner)
{
    public ChatDbAccess Access { get; } = access;
}

/// <summary>
/// Reads Messages' chat.db read-only (never `immutable`: that would miss WAL writes). Columns are
/// probed by name, so the reader works across macOS versions and upgrade histories.
/// </summary>
public sealed class ChatDbReader(string path)
{
    private static readonly string[] MessageColumns =
    [
        "guid", "text", "attributedBody", "handle_id", "service", "is_from_me", "error", "is_sent", "is_finished",
        "is_delivered", "date", "date_delivered", "date_read", "item_type", "associated_message_type",
        "was_downgraded", "schedule_type", "balloon_bundle_id",
    ];

    private string? _select;
    private readonly Lock _gate = new();
    private long _failedAtTicks;

    /// <summary>
    /// True for a few seconds after chat.db could not be opened: callers that can do without it (availability)
    /// skip it instead of failing again on every request. Health checks still open it every time.
    /// </summary>
    public bool RecentlyUnavailable => Environment.TickCount64 - Interlocked.Read(ref _failedAtTicks) < 5_000 && Interlocked.Read(ref _failedAtTicks) != 0;

    public string Path => path;

    /// <summary>
    /// Opens chat.db read-only and reads one row. Without Full Disk Access macOS may let the file be seen and
    /// even opened but not read, or hide it altogether, so SQLite's answer is classified, not File.Exists.
    /// </summary>
    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
            DefaultTimeout = 5,
        }.ToString());
        try
        {
            connection.Open();
            // Two commands: ExecuteScalar stops at the first row, and the pragma's own row came first, so the SELECT never ran
            // and nothing was read at the open (probe: a chat.db that is not a database passed it).
            using (var pragma = connection.CreateCommand())
            {
                pragma.CommandText = "PRAGMA busy_timeout=5000;";
                pragma.ExecuteNonQuery();
            }
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT 1 FROM message LIMIT 1;";
            cmd.ExecuteScalar();
            Interlocked.Exchange(ref _failedAtTicks, 0);
            return connection;
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 1 && e.Message.Contains("no such table", StringComparison.Ordinal))
        {
            // An empty file (SQLite takes it for an empty database) or another program's database: not Messages' chat.db. Taken as
            // busy for the moment, the send went out and could never be confirmed (review).
            connection.Dispose();
            Interlocked.Exchange(ref _failedAtTicks, Environment.TickCount64);
            throw new ChatDbUnavailableException(ChatDbAccess.Damaged,
                $"{path} has no message table: it is not Messages' chat.db (empty, or another database); the agent's own database is not affected", e);
        }
        catch (SqliteException e)
        {
            connection.Dispose();
            throw Unavailable(e);
        }
        catch (UnauthorizedAccessException e)
        {
            connection.Dispose();
            Interlocked.Exchange(ref _failedAtTicks, Environment.TickCount64);
            throw new ChatDbUnavailableException(ChatDbAccess.Denied, $"cannot open {path}: give the agent Full Disk Access ({e.Message})", e);
        }
    }

    /// <summary>
    /// A read of chat.db after its open: SQLite's refusal (a damaged page, a permission taken away meanwhile) is chat.db's, and
    /// says so. A raw SqliteException from here reached the API's handler for the agent's own database, which told the user
    /// to restore a healthy lineagent.db (probe: a damaged chat.db, `GET /api/availability` 503 "The agent's database is damaged").
    /// </summary>
    private T Read<T>(Func<SqliteConnection, T> read)
    {
        using var c = Open();
        try
        {
            return read(c);
        }
        catch (SqliteException e)
        {
            throw Unavailable(e);
        }
    }

    private ChatDbUnavailableException Unavailable(SqliteException e)
    {
        Interlocked.Exchange(ref _failedAtTicks, Environment.TickCount64);
        var access = Classify(e.SqliteErrorCode);
        return new ChatDbUnavailableException(access, access switch
        {
            ChatDbAccess.Denied => $"cannot open {path}: give the agent Full Disk Access (System Settings > Privacy & Security) ({e.Message})",
            ChatDbAccess.Missing => $"{path} does not exist (is Messages set up on this Mac?)",
            ChatDbAccess.Damaged => $"{path} is damaged: SQLite cannot read it as a database ({e.Message}); the agent's own database is not affected",
            _ => $"cannot read {path}: {e.Message}",
        }, e);
    }

    /// <summary>
    /// SQLITE_AUTH (23) and SQLITE_PERM (3) are macOS privacy protection. SQLITE_NOTADB (26) and SQLITE_CORRUPT (11): damaged. CANTOPEN (14) is a missing file only
    /// when the folder can be listed and does not hold it; a folder that cannot be listed is protection too.
    /// IOERR (10) on a file that is there is protection as well: TCC can let open() through and refuse the
    /// read (osaurus-ai/osaurus#2605), which SQLite reports as a disk I/O error.
    /// </summary>
    private ChatDbAccess Classify(int sqliteError)
    {
        if (sqliteError is 23 or 3)
            return ChatDbAccess.Denied;
        if (sqliteError is 26 or 11)
            return ChatDbAccess.Damaged;
        if (sqliteError is not (14 or 10))
            return ChatDbAccess.Unreadable;
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? ".";
        try
        {
            if (!Directory.Exists(dir))
                return ChatDbAccess.Missing;
            var listed = Directory.EnumerateFileSystemEntries(dir).Any(e => System.IO.Path.GetFileName(e) == System.IO.Path.GetFileName(path));
            return listed ? ChatDbAccess.Denied : sqliteError == 14 ? ChatDbAccess.Missing : ChatDbAccess.Unreadable;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            return ChatDbAccess.Denied;
        }
    }

    public ChatDbAccess CheckAccess()
    {
        try
        {
            using var c = Open();
            return ChatDbAccess.Ok;
        }
        catch (ChatDbUnavailableException e)
        {
            return e.Access;
        }
    }

    /// <summary>The SELECT list for this database's columns (probed once per reader).</summary>
    internal string SelectFrom(SqliteConnection c)
    {
        lock (_gate)
        {
            if (_select is not null)
                return _select;
            var present = Columns(c, "message");
            var hasJoin = Columns(c, "chat_message_join").Count > 0;
            var parts = new List<string> { "m.ROWID AS rowid" };
            foreach (var col in MessageColumns)
                parts.Add(present.Contains(col) ? $"m.{col} AS {col}" : $"NULL AS {col}");
            parts.Add(Columns(c, "handle").Contains("id") ? "h.id AS handle" : "NULL AS handle");
            parts.Add(hasJoin ? "EXISTS (SELECT 1 FROM chat_message_join j WHERE j.message_id = m.ROWID) AS in_chat" : "1 AS in_chat");
            _select = $"SELECT {string.Join(", ", parts)} FROM message m LEFT JOIN handle h ON h.ROWID = m.handle_id";
            return _select;
        }
    }

    public static HashSet<string> Columns(SqliteConnection c, string table)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT name FROM pragma_table_info('{table.Replace("'", "''")}')";
        using var r = cmd.ExecuteReader();
        var set = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        while (r.Read())
            set.Add(r.GetString(0));
        return set;
    }

    /// <summary>The SQL of the incremental read: a ROWID range, so its cost follows the new rows, not the table.</summary>
    public string AfterRowIdSql(SqliteConnection c) => SelectFrom(c) + " WHERE m.ROWID > @After ORDER BY m.ROWID LIMIT @Limit";

    /// <summary>Rows added after <paramref name="afterRowId"/>, oldest first.</summary>
    public IReadOnlyList<ChatMessage> ReadAfter(long afterRowId, int limit = 500)
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = AfterRowIdSql(c);
            cmd.Parameters.AddWithValue("@After", afterRowId);
            cmd.Parameters.AddWithValue("@Limit", limit);
            return ReadAll(cmd);
        });
    }

    public long MaxRowId()
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT COALESCE(MAX(ROWID), 0) FROM message";
            return Convert.ToInt64(cmd.ExecuteScalar());
        });
    }

    /// <summary>
    /// The highest ROWID the message table has given: sqlite_sequence's, as message is AUTOINCREMENT in every chat.db schema
    /// (tests/fixtures/chatdb), else MAX(ROWID). Unlike MAX(ROWID) it does not fall when the newest messages are deleted in
    /// Messages; only a new file (a rebuild, a restore) starts it again.
    /// </summary>
    public long HighWater()
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'";
            var sequence = Convert.ToInt64(cmd.ExecuteScalar()) > 0;
            cmd.CommandText = sequence
                ? "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'message'), 0), COALESCE((SELECT MAX(ROWID) FROM message), 0))"
                : "SELECT COALESCE(MAX(ROWID), 0) FROM message";
            return Convert.ToInt64(cmd.ExecuteScalar());
        });
    }

    /// <summary>Current state of rows the agent already matched to its sends.</summary>
    public IReadOnlyList<ChatMessage> ReadByGuids(IReadOnlyCollection<string> guids)
    {
        if (guids.Count == 0)
            return [];
        return Read(c =>
        {
            var result = new List<ChatMessage>(guids.Count);
            foreach (var chunk in guids.Chunk(400))
            {
                using var cmd = c.CreateCommand();
                var names = chunk.Select((g, i) => { cmd.Parameters.AddWithValue($"@g{i}", g); return $"@g{i}"; });
                cmd.CommandText = SelectFrom(c) + $" WHERE m.guid IN ({string.Join(",", names)})";
                result.AddRange(ReadAll(cmd));
            }
            return result;
        });
    }

    /// <summary>
    /// Our own rows to <paramref name="handle"/> above ROWID <paramref name="afterRowId"/> written at or after
    /// <paramref name="since"/>, oldest first: the candidates for a send's row. A ghost row may be written
    /// without a handle, so empty unjoined rows of that moment come too.
    /// </summary>
    public IReadOnlyList<ChatMessage> OutgoingTo(string handle, DateTimeOffset since, long afterRowId = 0)
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = SelectFrom(c) +
                " WHERE m.ROWID > @After AND m.handle_id IN (SELECT ROWID FROM handle WHERE id IN (@Handle, @Lower)) AND m.date >= @Since AND m.is_from_me = 1 ORDER BY m.ROWID";
            cmd.Parameters.AddWithValue("@After", afterRowId);
            cmd.Parameters.AddWithValue("@Handle", handle);
            cmd.Parameters.AddWithValue("@Lower", handle.ToLowerInvariant());
            cmd.Parameters.AddWithValue("@Since", AppleTime.ToAppleNanoseconds(since));
            var rows = ReadAll(cmd).ToList();
            using var ghosts = c.CreateCommand();
            ghosts.CommandText = SelectFrom(c) +
                " WHERE m.ROWID > @After AND m.date >= @Since AND m.is_from_me = 1 AND (m.handle_id IS NULL OR m.handle_id = 0) ORDER BY m.ROWID";
            ghosts.Parameters.AddWithValue("@After", afterRowId);
            ghosts.Parameters.AddWithValue("@Since", AppleTime.ToAppleNanoseconds(since));
            rows.AddRange(ReadAll(ghosts).Where(g => g.IsGhost));
            return rows.OrderBy(r => r.RowId).ToList();
        });
    }

    /// <summary>The ROWID of the row with <paramref name="guid"/>, or null when there is none.</summary>
    public long? RowIdOf(string guid)
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT ROWID FROM message WHERE guid = @Guid";
            cmd.Parameters.AddWithValue("@Guid", guid);
            return cmd.ExecuteScalar() is long rowId ? rowId : (long?)null;
        });
    }

    /// <summary>The guid of the row at <paramref name="rowId"/>, or null: a renumbered (rebuilt) database answers differently.</summary>
    public string? GuidAt(long rowId)
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT guid FROM message WHERE ROWID = @RowId";
            cmd.Parameters.AddWithValue("@RowId", rowId);
            return cmd.ExecuteScalar() as string;
        });
    }

    /// <summary>Rows written after <paramref name="since"/> (by date, not ROWID), oldest first: what is new after a rebuild.</summary>
    public IReadOnlyList<ChatMessage> ReadSince(DateTimeOffset since, int limit = 5000)
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = SelectFrom(c) + " WHERE m.date > @Since ORDER BY m.date, m.ROWID LIMIT @Limit";
            cmd.Parameters.AddWithValue("@Since", AppleTime.ToAppleNanoseconds(since));
            cmd.Parameters.AddWithValue("@Limit", limit);
            return ReadAll(cmd);
        });
    }

    /// <summary>
    /// The newest evidence about a handle's iMessage: an iMessage row that was delivered or came in (blue), an
    /// iMessage row that failed with 22 (gray), or any RCS row (an RCS conversation is not on iMessage).
    /// SMS rows say nothing: people text iMessage users too, and an SMS error 22 is about SMS.
    /// </summary>
    public ChatMessage? LastEvidenceFor(string handle)
    {
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = SelectFrom(c) + $"""
                 WHERE m.handle_id IN (SELECT ROWID FROM handle WHERE id IN (@Handle, @Lower)) AND {Evidence("m")}
                 ORDER BY m.date DESC LIMIT 1
                """;
            cmd.Parameters.AddWithValue("@Handle", handle);
            cmd.Parameters.AddWithValue("@Lower", handle.ToLowerInvariant());
            return ReadAll(cmd).FirstOrDefault();
        });
    }

    /// <summary>A row that tells blue or gray (<see cref="LastEvidenceFor"/>), on the message table aliased <paramref name="m"/>.</summary>
    private static string Evidence(string m) =>
        $"(({m}.service = 'iMessage' AND (({m}.error = 0 AND ({m}.is_from_me = 0 OR {m}.is_delivered = 1)) OR {m}.error = 22)) " +
        $"OR ({m}.service IN ('RCS', 'rcs') AND {m}.error = 0))";

    /// <summary>
    /// <see cref="LastEvidenceFor"/> for many handles in one statement (a bulk send's leads): per handle one probe of
    /// message_idx_handle (handle_id, date) to its newest evidence row. Keyed by the handle as asked.
    /// </summary>
    public IReadOnlyDictionary<string, ChatMessage> LastEvidenceForMany(IReadOnlyCollection<string> handles)
    {
        if (handles.Count == 0)
            return new Dictionary<string, ChatMessage>();
        return Read(c =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"""
                SELECT a.value AS asked, (SELECT e.ROWID FROM message e
                                          WHERE e.handle_id IN (SELECT ROWID FROM handle WHERE id IN (a.value, lower(a.value))) AND {Evidence("e")}
                                          ORDER BY e.date DESC LIMIT 1) AS row
                FROM json_each(@Handles) a
                """;
            cmd.Parameters.AddWithValue("@Handles", System.Text.Json.JsonSerializer.Serialize(handles.Distinct().ToArray()));
            var rowOf = new Dictionary<long, List<string>>();
            using (var r = cmd.ExecuteReader())
                while (r.Read())
                    if (!r.IsDBNull(1))
                        (rowOf.TryGetValue(r.GetInt64(1), out var asked) ? asked : rowOf[r.GetInt64(1)] = []).Add(r.GetString(0));
            var result = new Dictionary<string, ChatMessage>();
            if (rowOf.Count == 0)
                return result;
            using var rows = c.CreateCommand();
            rows.CommandText = SelectFrom(c) + " WHERE m.ROWID IN (SELECT value FROM json_each(@Rows))";
            rows.Parameters.AddWithValue("@Rows", System.Text.Json.JsonSerializer.Serialize(rowOf.Keys.ToArray()));
            foreach (var row in ReadAll(rows))
                foreach (var handle in rowOf[row.RowId])
                    result[handle] = row;
            return result;
        });
    }

    /// <summary>
    /// Runs a query built from <see cref="SelectFrom"/>. A chat.db replaced by one with other columns (a restore from another
    /// macOS version, BRIDGE.md) makes the probed list wrong: it is forgotten, so the next read probes again, and this read
    /// fails as chat.db being unreadable for the moment instead of with an unexpected SQL error.
    /// </summary>
    private List<ChatMessage> ReadAll(SqliteCommand cmd)
    {
        try
        {
            return ReadRows(cmd);
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 1 // SQLITE_ERROR, and only a missing column or table: not a bug in our SQL
                                        && (e.Message.Contains("no such column", StringComparison.Ordinal) || e.Message.Contains("no such table", StringComparison.Ordinal)))
        {
            lock (_gate)
                _select = null;
            throw new ChatDbUnavailableException(ChatDbAccess.Unreadable, $"{path} changed under the agent ({e.Message}); its columns are read again", e);
        }
    }

    private static List<ChatMessage> ReadRows(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<ChatMessage>();
        int Ord(string name) => r.GetOrdinal(name);
        long Long(string name) => r.IsDBNull(Ord(name)) ? 0 : r.GetInt64(Ord(name));
        string? Str(string name) => r.IsDBNull(Ord(name)) ? null : r.GetValue(Ord(name)) as string;
        while (r.Read())
        {
            var text = Str("text");
            if (string.IsNullOrEmpty(text) && !r.IsDBNull(Ord("attributedBody")))
                text = TypedStreamText.Decode((byte[])r.GetValue(Ord("attributedBody"))) ?? text;
            list.Add(new ChatMessage(
                Long("rowid"), Str("guid") ?? "", text, Str("handle"), Str("service"), Long("is_from_me") != 0,
                Long("error"), Long("is_sent") != 0, Long("is_finished") != 0, Long("is_delivered") != 0,
                AppleTime.FromAppleValue(Long("date")), AppleTime.FromAppleValue(Long("date_delivered")),
                AppleTime.FromAppleValue(Long("date_read")), Long("item_type"), Long("associated_message_type"),
                Long("was_downgraded") != 0, Long("schedule_type"), Long("in_chat") != 0)
            {
                BalloonBundleId = Str("balloon_bundle_id"),
            });
        }
        return list;
    }
}
