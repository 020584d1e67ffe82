using System.Diagnostics;
using LineAgent.Bridge.ChatDb;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace LineAgent.Tests.Bridge;

public sealed class ChatDbReaderTests
{
    [TestCase(15)]
    [TestCase(26)]
    public void Reader_ShouldReadBothFixtureSchemas(int macOs)
    {
        using var dir = new TempDir();
        using var db = new ChatDbBuilder(dir.File("chat.db"), macOs);
        var sentAt = DateTimeOffset.UtcNow.AddMinutes(-5);
        var outRow = db.Message("+12025550123", "Hi Ana", fromMe: true, sent: true, delivered: true, date: sentAt, read: sentAt.AddMinutes(1));
        var inRow = db.Message("+12025550123", "Thanks!", fromMe: false, date: sentAt.AddMinutes(2));
        db.Message("ana@example.com", "plain text column", fromMe: false, plainTextColumn: true);
        db.Message("+12025550124", "no imessage", fromMe: true, error: 22);

        var reader = new ChatDbReader(db.Path);
        var rows = reader.ReadAfter(0);

        Assert.That(rows.Select(r => r.Text), Is.EqualTo(new[] { "Hi Ana", "Thanks!", "plain text column", "no imessage" }));
        var first = rows[0];
        Assert.That(first.RowId, Is.EqualTo(outRow));
        Assert.That(first.Handle, Is.EqualTo("+12025550123"));
        Assert.That(first.IsFromMe && first.IsSent && first.IsFinished && first.IsDelivered, Is.True);
        Assert.That(first.Date!.Value, Is.EqualTo(sentAt).Within(TimeSpan.FromMilliseconds(1)));
        Assert.That(first.DateRead!.Value, Is.EqualTo(sentAt.AddMinutes(1)).Within(TimeSpan.FromMilliseconds(1)));
        Assert.That(rows[1].RowId, Is.EqualTo(inRow));
        Assert.That(rows[1].IsFromMe, Is.False);
        Assert.That(rows[3].Error, Is.EqualTo(22));
        Assert.That(reader.ReadAfter(inRow).Select(r => r.RowId), Is.All.GreaterThan(inRow));
        Assert.That(reader.MaxRowId(), Is.EqualTo(rows[^1].RowId));
        Assert.That(reader.ReadByGuids([first.Guid]).Single().Text, Is.EqualTo("Hi Ana"));
        Assert.That(reader.OutgoingTo("+12025550123", sentAt.AddSeconds(-2)).Single().Guid, Is.EqualTo(first.Guid));
    }

    /// <summary>A chat.db as old systems wrote it: a message table with a handful of the columns the reader probes for.</summary>
    private static void OldStyleChatDb(string path, string text)
    {
        using var c = new SqliteConnection($"Data Source={path};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            CREATE TABLE handle (ROWID INTEGER PRIMARY KEY, id TEXT, service TEXT);
            CREATE TABLE message (ROWID INTEGER PRIMARY KEY, guid TEXT, text TEXT, handle_id INTEGER, is_from_me INTEGER, date INTEGER);
            INSERT INTO handle VALUES (1, '+12025550123', 'iMessage');
            INSERT INTO message VALUES (1, 'G1', @Text, 1, 0, 500000000);
            """;
        cmd.Parameters.AddWithValue("@Text", text);
        cmd.ExecuteNonQuery();
    }

    [Test]
    public void Reader_ShouldTreatMissingColumnsAsZero()
    {
        using var dir = new TempDir();
        OldStyleChatDb(dir.File("old.db"), "old style");
        var row = new ChatDbReader(dir.File("old.db")).ReadAfter(0).Single();
        Assert.That(row.Text, Is.EqualTo("old style"));
        Assert.That(row.Error, Is.Zero);
        Assert.That(row.IsDelivered, Is.False);
        Assert.That(row.Date, Is.EqualTo(AppleTime.Epoch.AddSeconds(500_000_000)), "values below 1e12 are seconds");
        Assert.That(row.InChat, Is.True);
    }

    [Test]
    public void Reader_ShouldProbeTheColumnsAgain_WhenChatDbIsReplacedByOneWithFewer()
    {
        using var dir = new TempDir();
        using (var db = new ChatDbBuilder(dir.File("chat.db"), 26))
            db.Message("+12025550123", "Hi Ana", fromMe: true, sent: true);
        var reader = new ChatDbReader(dir.File("chat.db"));
        Assert.That(reader.ReadAfter(0).Single().Text, Is.EqualTo("Hi Ana"), "columns probed on the full schema");

        // A restore from an older system: the file is replaced by one whose message table lacks most of those columns.
        OldStyleChatDb(dir.File("restored.db"), "restored");
        File.Move(dir.File("restored.db"), dir.File("chat.db"), overwrite: true);

        var e = Assert.Throws<ChatDbUnavailableException>(() => reader.ReadAfter(0));
        Assert.That(e!.Access, Is.EqualTo(ChatDbAccess.Unreadable));
        Assert.That(reader.ReadAfter(0).Single().Text, Is.EqualTo("restored"), "the next read uses the new file's columns");
    }

    [Test]
    public void Reader_ShouldReportAMissingDatabaseAsANamedState()
    {
        var reader = new ChatDbReader("/nonexistent/Library/Messages/chat.db");
        Assert.That(reader.CheckAccess(), Is.EqualTo(ChatDbAccess.Missing));
        var e = Assert.Throws<ChatDbUnavailableException>(() => reader.ReadAfter(0));
        Assert.That(e!.Access, Is.EqualTo(ChatDbAccess.Missing));
    }

    /// <summary>
    /// Without Full Disk Access macOS can list chat.db yet refuse to open or read it (openclaw/imsg#83,
    /// cfinke/OSX-Messages-Exporter#19, osaurus-ai/osaurus#2605): SQLite's refusal of a file that is there is
    /// "denied", not "missing". Played here by a chat.db that SQLite cannot read although the folder lists it
    /// (a read error, as a TCC-refused read() gives).
    /// </summary>
    [Test]
    public void Reader_ShouldJudgeAccessFromSqlitesAnswer_NotFromWhetherTheFileExists()
    {
        using var dir = new TempDir();
        var unopenable = dir.File("Messages/chat.db");
        Directory.CreateDirectory(unopenable); // there, listed, but not a database SQLite can open
        var reader = new ChatDbReader(unopenable);
        Assert.That(reader.CheckAccess(), Is.EqualTo(ChatDbAccess.Denied));
        var e = Assert.Throws<ChatDbUnavailableException>(() => reader.MaxRowId());
        Assert.That(e!.Message, Does.Contain("Full Disk Access"));

        Assert.That(new ChatDbReader(dir.File("Messages/other.db")).CheckAccess(), Is.EqualTo(ChatDbAccess.Missing), "the folder lists no such file");
    }

    /// <summary>
    /// A chat.db that is not a database (or is malformed) is `Damaged`, at the open and at every read: never a raw
    /// SqliteException, which the API took for its own database's (probe H). The open used to read nothing: the pragma
    /// before its SELECT returned a row, and ExecuteScalar stopped there.
    /// </summary>
    [Test]
    public void AFileThatIsNotADatabase_ShouldBeDamaged_AtTheOpenAndAtEveryRead()
    {
        using var dir = new TempDir();
        var path = dir.File("chat.db");
        File.WriteAllBytes(path, Enumerable.Range(0, 8192).Select(i => (byte)(i * 37 % 251)).ToArray());
        var reader = new ChatDbReader(path);
        Assert.That(reader.CheckAccess(), Is.EqualTo(ChatDbAccess.Damaged));
        foreach (var read in new Action[] { () => reader.MaxRowId(), () => reader.ReadAfter(0), () => reader.LastEvidenceFor("+12025550183"),
                     () => reader.GuidAt(1), () => reader.ReadByGuids(["g"]) })
        {
            var e = Assert.Throws<ChatDbUnavailableException>(() => read());
            Assert.That(e!.Access, Is.EqualTo(ChatDbAccess.Damaged));
            Assert.That(e.Message, Does.Contain("is damaged"));
        }
    }

    /// <summary>
    /// An empty file, or another program's database, has no message table: not Messages' chat.db, so `Damaged` (nothing is
    /// sent), not `Unreadable` (busy for the moment: the send goes on and could never be confirmed; review).
    /// </summary>
    [Test]
    public void AnEmptyFileOrAnotherDatabase_ShouldBeDamaged_NotBusy()
    {
        using var dir = new TempDir();
        var empty = dir.File("empty.db");
        File.WriteAllBytes(empty, []);
        var other = dir.File("other.db");
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={other};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE notes (x TEXT)";
            cmd.ExecuteNonQuery();
        }
        foreach (var path in new[] { empty, other })
        {
            var reader = new ChatDbReader(path);
            Assert.That(reader.CheckAccess(), Is.EqualTo(ChatDbAccess.Damaged), path);
            var e = Assert.Throws<ChatDbUnavailableException>(() => reader.MaxRowId());
            Assert.That(e!.Message, Does.Contain("not Messages' chat.db"));
        }
    }

    /// <summary>
    /// The incremental read is a ROWID range: on a 200,000-row chat.db it visits only the new rows
    /// (SQLite's own VM step counter), the same work as on a small database.
    /// </summary>
    [Test]
    public void IncrementalRead_ShouldTouchOnlyTheNewRows_OnA200kRowChatDb()
    {
        using var dir = new TempDir();
        using var db = new ChatDbBuilder(dir.File("chat.db"), 26);
        using (var tx = db.Connection.BeginTransaction())
        {
            using var cmd = db.Connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO message (guid, text, handle_id, service, is_from_me, date)
                VALUES (@g, 'old message', 1, 'iMessage', @fromMe, @d)
                """;
            var g = cmd.Parameters.Add("@g", SqliteType.Text);
            var f = cmd.Parameters.Add("@fromMe", SqliteType.Integer);
            var d = cmd.Parameters.Add("@d", SqliteType.Integer);
            db.Handle("+12025550123");
            for (var i = 0; i < 200_000; i++)
            {
                g.Value = $"OLD-{i}";
                f.Value = i % 2;
                d.Value = 700_000_000_000_000_000L + i;
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
        var reader = new ChatDbReader(db.Path);
        var last = reader.MaxRowId();
        Assert.That(last, Is.EqualTo(200_000));
        for (var i = 0; i < 10; i++)
            db.Message("+12025550123", $"new {i}", fromMe: false);

        using var c = reader.Open();
        var sql = reader.AfterRowIdSql(c);
        var plan = QueryPlan(c, sql, last);
        Assert.That(plan, Does.Contain("SEARCH m USING INTEGER PRIMARY KEY (rowid>?)"), plan);

        var (rows, steps) = RunCounting(c, sql, last);
        Assert.That(rows, Is.EqualTo(10));
        var (_, stepsWhenNothingIsNew) = RunCounting(c, sql, last + 10);
        TestContext.Out.WriteLine($"VM steps: {steps} for 10 new rows on 200,010; {stepsWhenNothingIsNew} for none");
        // A scan of 200k rows would cost millions of steps; a range over 10 rows costs a few hundred.
        Assert.That(steps, Is.LessThan(2_000));
        Assert.That(stepsWhenNothingIsNew, Is.LessThan(100));

        var clock = Stopwatch.StartNew();
        Assert.That(reader.ReadAfter(last), Has.Count.EqualTo(10));
        TestContext.Out.WriteLine($"ReadAfter on 200,010 rows: {clock.Elapsed.TotalMilliseconds:0.0} ms");
    }

    private static string QueryPlan(SqliteConnection c, string sql, long after)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "EXPLAIN QUERY PLAN " + sql;
        cmd.Parameters.AddWithValue("@After", after);
        cmd.Parameters.AddWithValue("@Limit", 500);
        using var r = cmd.ExecuteReader();
        var lines = new List<string>();
        while (r.Read())
            lines.Add(r.GetString(3));
        return string.Join("\n", lines);
    }

    /// <summary>Runs the statement through SQLite directly and reads SQLITE_STMTSTATUS_VM_STEP.</summary>
    private static (int Rows, int Steps) RunCounting(SqliteConnection c, string sql, long after)
    {
        var rc = raw.sqlite3_prepare_v2(c.Handle, sql, out var stmt);
        Assert.That(rc, Is.EqualTo(raw.SQLITE_OK), raw.sqlite3_errmsg(c.Handle).utf8_to_string());
        try
        {
            raw.sqlite3_bind_int64(stmt, raw.sqlite3_bind_parameter_index(stmt, "@After"), after);
            raw.sqlite3_bind_int64(stmt, raw.sqlite3_bind_parameter_index(stmt, "@Limit"), 500);
            var rows = 0;
            while (raw.sqlite3_step(stmt) == raw.SQLITE_ROW)
                rows++;
            return (rows, raw.sqlite3_stmt_status(stmt, raw.SQLITE_STMTSTATUS_VM_STEP, 0));
        }
        finally
        {
            raw.sqlite3_finalize(stmt);
        }
    }
}
