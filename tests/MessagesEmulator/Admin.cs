using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MessagesEmulation;

/// <summary>
/// The admin commands, callable in-process (tests) or from the command line (<see cref="Cli"/>).
/// <paramref name="home"/> is the state directory ($MESSAGES_EMULATOR_HOME on the command line).
/// </summary>
public static class Admin
{
    /// <summary>fixtures/chatdb next to the emulator dll (copied there by the csproj).</summary>
    public static string FixturesDir => Path.Combine(Path.GetDirectoryName(Host.EmulatorDll)!, "fixtures", "chatdb");

    /// <summary>
    /// Creates chat.db (WAL) from Apple's schema. With the same settings again: unchanged, returns false.
    /// Other settings: an error unless <paramref name="force"/> (recreates the db and clears counters and flags).
    /// </summary>
    public static bool Init(string home, string schema, string me = Defaults.Me, string smsNumber = Defaults.SmsNumber, bool force = false, string? schemaFile = null)
    {
        if (schema is not ("15" or "26"))
            throw new EmulatorException($"init: --schema must be 15 or 26, got {schema}");
        Directory.CreateDirectory(home);
        var dbPath = ChatDb.PathIn(home);
        if (File.Exists(dbPath) && !force)
        {
            var state = State.Read(home);
            string? Get(string key) => State.Text(state, key);
            if (Get("schema") == schema && Get("me") == me && Get("smsNumber") == smsNumber)
                return false;
            throw new EmulatorException(
                $"{dbPath} exists with other settings (schema {Get("schema")}, me {Get("me")}, smsNumber {Get("smsNumber")}); use --force to recreate it");
        }
        schemaFile ??= Path.Combine(FixturesDir, $"schema-macos{schema}.sql");
        if (!File.Exists(schemaFile))
            throw new EmulatorException($"schema file {schemaFile} not found");
        var temp = $"{dbPath}.init.{Environment.ProcessId}";
        BuildDatabase(temp, File.ReadAllText(schemaFile), _ => { });
        ReplaceDatabase(temp, dbPath);
        State.Update(home, s =>
        {
            s["schema"] = schema;
            s["me"] = me;
            s["smsNumber"] = smsNumber;
            s["counters"] = new Dictionary<string, object?>();
            s["running"] = true;
            s["launches"] = 0.0;
            s["restarts"] = 0.0;
        });
        return true;
    }

    /// <summary>Builds a WAL database from the schema under a temporary name; <paramref name="fill"/> may add rows.</summary>
    private static void BuildDatabase(string path, string schemaSql, Action<ChatDb> fill)
    {
        foreach (var suffix in new[] { "", "-wal", "-shm", "-journal" })
            File.Delete(path + suffix);
        using var db = new ChatDb(ChatDb.Open(path, create: true));
        var mode = (string?)db.Scalar("PRAGMA journal_mode=WAL");
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            throw new EmulatorException($"could not switch {path} to WAL (got {mode})");
        db.Exec(schemaSql);
        if (db.Scalar("SELECT 1 FROM sqlite_master WHERE name = 'index_state_metrics'") is not null)
            db.Exec("INSERT OR IGNORE INTO index_state_metrics (id) VALUES (1)");
        fill(db);
    }

    /// <summary>Renames the new database over chat.db (a new inode); the old -wal/-shm go first so they are never applied to it.</summary>
    private static void ReplaceDatabase(string temp, string dbPath)
    {
        foreach (var suffix in new[] { "-wal", "-shm", "-journal" })
        {
            if (File.Exists(temp + suffix))
                throw new EmulatorException($"{temp}{suffix} was left behind: the new database is not complete");
            File.Delete(dbPath + suffix);
        }
        File.Move(temp, dbPath, overwrite: true);
    }

    /// <summary>
    /// An inbound message (is_from_me=0, finished, delivered, joined to the chat); returns its ROWID.
    /// <paramref name="date"/> writes an older date on a new, high ROWID, as iCloud sync back-fills old messages.
    /// </summary>
    public static long Incoming(string home, string handle, string text, string service = "iMessage", DateTimeOffset? date = null, string? guid = null)
    {
        if (!Defaults.Services.Contains(service))
            throw new EmulatorException($"incoming: --service must be iMessage, SMS or RCS, got {service}");
        return MessageWriter.Write(home, new NewMessage
        {
            Service = service, Address = handle, AttributedBody = TypedStream.Encode(text), FromMe = false,
            Date = date is null ? null : ChatDb.ToAppleNs(date.Value), Guid = guid,
        }).RowId;
    }

    /// <summary>`--date`: unix seconds (fractions allowed) or ISO 8601 (UTC unless it says otherwise).</summary>
    public static DateTimeOffset ParseDate(string value)
    {
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
            return DateTimeOffset.UnixEpoch.AddTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));
        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
            return t;
        throw new EmulatorException($"--date: not unix seconds or ISO 8601: {value}");
    }

    /// <summary>One JSON object per message row, in ROWID order (texts decoded from attributedBody).</summary>
    public static List<JsonObject> Dump(string home)
    {
        using var db = ChatDb.OpenIn(home);
        var balloon = db.Columns("message").Contains("balloon_bundle_id") ? "m.balloon_bundle_id" : "NULL";
        using var cmd = ChatDb.Command(db.Connection,
            "SELECT m.ROWID, m.guid, h.id, m.service, m.is_from_me, m.error, m.is_sent, m.is_finished, m.is_delivered," +
            " m.date, m.date_read, m.date_delivered, m.text, m.attributedBody," +
            " (SELECT c.guid FROM chat_message_join j JOIN chat c ON c.ROWID = j.chat_id WHERE j.message_id = m.ROWID LIMIT 1), " + balloon +
            " FROM message m LEFT JOIN handle h ON h.ROWID = m.handle_id ORDER BY m.ROWID");
        using var r = cmd.ExecuteReader();
        string[] keys = ["ROWID", "guid", "handle", "service", "is_from_me", "error", "is_sent", "is_finished", "is_delivered", "date", "date_read", "date_delivered"];
        var rows = new List<JsonObject>();
        while (r.Read())
        {
            var row = new JsonObject();
            for (var i = 0; i < keys.Length; i++)
                row[keys[i]] = r.IsDBNull(i) ? null : r.GetValue(i) is string s ? JsonValue.Create(s) : JsonValue.Create(r.GetInt64(i));
            row["text"] = r.IsDBNull(12) ? TypedStream.Decode(r.IsDBNull(13) ? null : (byte[])r.GetValue(13)) : r.GetString(12);
            row["chat"] = r.IsDBNull(14) ? null : r.GetString(14);
            row["balloon_bundle_id"] = r.IsDBNull(15) ? null : r.GetString(15);
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>calls.ndjson with argv decoded as UTF-8 (invalid bytes replaced).</summary>
    public static List<JsonObject> Calls(string home)
    {
        var path = CallLog.PathIn(home);
        if (!File.Exists(path))
            return [];
        string[] lines;
        using (var f = Util.OpenExclusive(path, FileMode.Open, FileAccess.Read))
        using (var reader = new StreamReader(f, Util.Utf8))
            lines = reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return lines.Select(line =>
        {
            var record = JsonNode.Parse(line)!.AsObject();
            var argv = record["argv_b64"]!.AsArray().Select(a => (JsonNode?)Util.Utf8.GetString(Convert.FromBase64String(a!.GetValue<string>()))).ToArray();
            record.Remove("argv_b64");
            record["argv"] = new JsonArray(argv);
            return record;
        }).ToList();
    }

    /// <summary>Replaces control.json atomically with this JSON object.</summary>
    public static void Control(string home, string json)
    {
        object? node;
        try { node = MiniJson.Parse(json); }
        catch (FormatException e) { throw new EmulatorException($"control: not valid JSON: {e.Message}"); }
        if (node is not Dictionary<string, object?>)
            throw new EmulatorException("control must be a JSON object");
        Directory.CreateDirectory(home);
        Util.WriteAtomic(MessagesEmulation.Control.PathIn(home), Encoding.UTF8.GetBytes(MiniJson.Write(node, indented: true)));
    }

    /// <summary>Forgets the failCount/hangCount/consentCount counters.</summary>
    public static void Reset(string home) => State.Update(home, s => { s["counters"] = new Dictionary<string, object?>(); });

    /// <summary>Messages quits: status prints not_running; hung calls end with -609; the next send launches it.</summary>
    public static void Quit(string home) => State.Update(home, s => { s["running"] = false; });

    /// <summary>
    /// A message deleted in Messages (a conversation or a junk text deleted here or on the iPhone): its row and its chat join
    /// go, through chat.db's own delete triggers; the other rows keep their ROWIDs. Returns whether there was such a row.
    /// </summary>
    public static bool Delete(string home, long rowId)
    {
        using var db = ChatDb.OpenIn(home);
        db.Exec("BEGIN IMMEDIATE");
        var found = (long)db.Scalar("SELECT COUNT(*) FROM message WHERE ROWID = @p0", rowId)! > 0;
        // The join's delete trigger removes a message left in no chat; the DELETE after it is for one that was in none.
        db.Exec("DELETE FROM chat_message_join WHERE message_id = @p0", rowId);
        db.Exec("DELETE FROM message WHERE ROWID = @p0", rowId);
        db.Exec("COMMIT");
        return found;
    }

    /// <summary>The user opens Messages (not counted in `launches`, which counts launches by Apple events).</summary>
    public static void Launch(string home) => State.Update(home, s => { s["running"] = true; });

    /// <summary>state.json as text ("{}" when there is none).</summary>
    public static string StateJson(string home) => MiniJson.Write(State.Read(home), indented: true);

    public static string? Decode(byte[] blob) => TypedStream.Decode(blob);

    /// <summary>
    /// Replaces chat.db as a rebuild or restore does: a new database from the schema under a temporary name with
    /// the handles and chats and only the last <paramref name="keep"/> messages, renumbered from ROWID 1 (guids,
    /// dates, texts and joins kept), renamed over chat.db (new inode); the old -wal/-shm are deleted.
    /// Returns the new MAX(ROWID) of message (0 when empty). With <paramref name="shuffle"/> every message is kept and they
    /// are numbered newest first (by date): MAX(ROWID) stays where it was, and the newest rows lie far below it, under older
    /// ones (Spshulem/openAGI#36: after a rebuild a just-sent message was at ROWID 610157 under MAX 627029).
    /// </summary>
    public static long Rebuild(string home, int keep = 0, bool shuffle = false)
    {
        if (keep < 0)
            throw new EmulatorException("rebuild: --keep must be >= 0");
        var dbPath = ChatDb.PathIn(home);
        if (!File.Exists(dbPath))
            throw new EmulatorException($"{dbPath} does not exist: run `MessagesEmulator init` first");
        var state = State.Read(home);
        var schema = State.Text(state, "schema") ?? "26";
        var temp = $"{dbPath}.rebuild.{Environment.ProcessId}";
        long max = 0;
        BuildDatabase(temp, File.ReadAllText(Path.Combine(FixturesDir, $"schema-macos{schema}.sql")), db =>
        {
            db.Exec("ATTACH DATABASE @p0 AS old", dbPath);
            db.Exec("BEGIN IMMEDIATE");
            foreach (var table in new[] { "handle", "chat", "chat_handle_join" })
                CopyAll(db, table);
            var messageColumns = SharedColumns(db, "message");
            var kept = new List<long>();
            using (var cmd = shuffle
                       ? ChatDb.Command(db.Connection, "SELECT ROWID FROM old.message ORDER BY date DESC, ROWID DESC")
                       : ChatDb.Command(db.Connection, "SELECT ROWID FROM old.message ORDER BY ROWID DESC LIMIT @p0", keep))
            using (var r = cmd.ExecuteReader())
                while (r.Read())
                    kept.Add(r.GetInt64(0));
            if (!shuffle)
                kept.Reverse();
            var newId = 0L;
            foreach (var oldId in kept)
            {
                newId++;
                db.Exec($"INSERT INTO main.message (ROWID, {messageColumns}) SELECT @p0, {messageColumns} FROM old.message WHERE ROWID = @p1", newId, oldId);
                var joinColumns = SharedColumns(db, "chat_message_join", except: "message_id");
                db.Exec($"INSERT OR IGNORE INTO main.chat_message_join (message_id, {joinColumns}) SELECT @p0, {joinColumns} FROM old.chat_message_join WHERE message_id = @p1",
                    newId, oldId);
            }
            db.Exec("COMMIT");
            db.Exec("DETACH DATABASE old");
            max = (long)db.Scalar("SELECT COALESCE(MAX(ROWID), 0) FROM message")!;
        });
        ReplaceDatabase(temp, dbPath);
        return max;
    }

    private static void CopyAll(ChatDb db, string table)
    {
        var columns = SharedColumns(db, table);
        db.Exec($"INSERT OR IGNORE INTO main.{table} (ROWID, {columns}) SELECT ROWID, {columns} FROM old.{table} ORDER BY ROWID");
    }

    /// <summary>Columns that the table has in both databases (probed by name), without the ROWID column.</summary>
    private static string SharedColumns(ChatDb db, string table, string? except = null)
    {
        List<string> Read(string schema)
        {
            var list = new List<string>();
            using var cmd = ChatDb.Command(db.Connection, $"PRAGMA {schema}.table_info({table})");
            using var r = cmd.ExecuteReader();
            while (r.Read())
                list.Add(r.GetString(1));
            return list;
        }
        var old = Read("old").ToHashSet();
        return string.Join(", ", Read("main")
            .Where(c => old.Contains(c) && c != except && !c.Equals("ROWID", StringComparison.OrdinalIgnoreCase))
            .Select(c => $"\"{c}\""));
    }
}

internal static class Json
{
    /// <summary>One line per record, non-ASCII text as it is (dump and calls are for people reading them).</summary>
    public static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
