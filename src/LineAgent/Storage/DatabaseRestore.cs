using System.Globalization;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>
/// `lineagent restore`: puts a backup back as &lt;data dir&gt;/lineagent.db. Refuses while an agent holds the data dir's
/// agent.lock (and holds it itself meanwhile, so none starts half-way); checks the copy before it goes in place; moves
/// the current lineagent.db (and its -wal/-shm) aside to lineagent.db.damaged-&lt;UTC time&gt; (.replaced-&lt;UTC time&gt;
/// when it passed the checks), never deletes it.
/// </summary>
public sealed class DatabaseRestore(string dataDir, TextWriter output, TextWriter errors, TimeProvider time)
{
    public const int Refused = 1;

    /// <summary>
    /// Left in the restored database for the agent's next start (bridge_state): when the restore ran (ms) and which
    /// backup. StartupRecovery then fails, through the lifecycle (events, webhooks), the pending messages that were due
    /// by then: they may have gone out after the backup was taken, which still has them queued.
    /// </summary>
    public const string RestoredAtKey = "restore.at";
    public const string RestoredFromKey = "restore.from";

    /// <summary>
    /// Also left for the next start: the pending messages of the backup that the database it replaced shows sent (JSON
    /// array of {id, sentAt, ref}; marked sent again), in sending or failed (JSON array of ids; failed as `restored`, never
    /// sent again), and cancelled (cancelled again).
    /// </summary>
    public const string SentKey = "restore.sent";
    public const string WentOnKey = "restore.went_on";
    public const string CancelledKey = "restore.cancelled";
    /// <summary>The file name the database this restore replaces is moved to ("" when there was none): see DatabaseStartup.FinishRestore.</summary>
    public const string AsideKey = "restore.aside";
    public const string ClearMarks = $"DELETE FROM bridge_state WHERE key IN ('{RestoredAtKey}', '{RestoredFromKey}', '{SentKey}', '{WentOnKey}', '{CancelledKey}', '{AsideKey}')";

    private string DatabasePath => Path.Combine(dataDir, "lineagent.db");

    /// <summary>The name a restore's copy has until it is marked (then lineagent.db.restoring).</summary>
    public const string StagingSuffix = ".restoring-staging";
    private string LockPath => Path.Combine(dataDir, "agent.lock");

    /// <summary>Lists the backups and what the current database looks like; changes nothing.</summary>
    public int List()
    {
        if (!Directory.Exists(dataDir))
            return Fail($"There is no data directory {dataDir}.");
        var now = time.GetUtcNow();
        var backups = DatabaseBackups.List(dataDir, now);
        output.WriteLine($"Data directory: {dataDir}");
        output.WriteLine($"Current database: {Describe(DatabasePath)}");
        if (backups.Count == 0)
        {
            output.WriteLine($"No backups in {DatabaseBackups.FolderOf(dataDir)}.");
            return 0;
        }
        output.WriteLine($"Backups in {DatabaseBackups.FolderOf(dataDir)}, newest first:");
        var damaged = 0;
        foreach (var b in backups)
        {
            // The header and the length only (instant): a listing that ran quick_check on each would take seconds per
            // gigabyte. A damaged backup was listed like a good one, and --from took it only to refuse it (probe).
            var problem = DatabaseFile.FirstLook(b.Path) is not { } p ? ""
                : p.StartsWith("cannot be read", StringComparison.Ordinal) ? $"  UNREADABLE: it {p}; --yes skips it"
                : $"  DAMAGED: it {p}; --yes skips it";
            if (problem.Length > 0)
                damaged++;
            output.WriteLine(b.FutureDated
                ? $"  {b.Name}  {b.TakenAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC  dated in the future (the clock was wrong when it was taken; its age is unknown)  {b.Bytes / 1024} KB{problem}"
                : $"  {b.Name}  {b.TakenAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC  {DatabaseBackups.Age(now - b.TakenAt)} ago  {b.Bytes / 1024} KB{problem}");
        }
        output.WriteLine(damaged == backups.Count
            ? "None of them can be restored: each is damaged or cannot be read."
            : "Listed from each file's header and length; a restore also runs quick_check on its copy and skips one that fails.");
        using (var held = Hosting.DataDirLock.TryOpen(LockPath, TimeSpan.Zero))
            if (held is null)
                output.WriteLine("An agent is running on this data directory: stop it before restoring.");
        var dir = DatabaseFile.ShellQuote(dataDir);
        output.WriteLine($"To restore the newest good one: lineagent restore --data-dir {dir} --yes");
        output.WriteLine($"To restore another: lineagent restore --data-dir {dir} --from {backups[^1].Name}");
        return 0;
    }

    /// <summary>Restores <paramref name="from"/> (a path, or a name in backups/), or the newest backup that passes the checks.</summary>
    public int Run(string? from)
    {
        if (!Directory.Exists(dataDir))
            return Fail($"There is no data directory {dataDir}.");
        // An agent that was just stopped may still be writing its last changes (the search index it owed) and releasing
        // the lock: waited for as a start waits (DataDirLock.DefaultWait).
        using var held = Hosting.DataDirLock.TryOpen(LockPath, Hosting.DataDirLock.DefaultWait);
        if (held is null)
            return Fail($"An agent is running on {dataDir} (it holds {LockPath}): stop it first (installed: launchctl kill TERM gui/$UID/com.lineagent.agent, which stays stopped after a clean exit; else Ctrl+C), then run this again. Nothing was changed.");

        List<string> candidates;
        if (from is not null)
        {
            var path = File.Exists(from) ? Path.GetFullPath(from) : Path.Combine(DatabaseBackups.FolderOf(dataDir), from);
            if (!File.Exists(path))
                return Fail($"There is no file {from} (nor {path}). Nothing was changed.");
            candidates = [path];
        }
        else
        {
            candidates = DatabaseBackups.List(dataDir, time.GetUtcNow()).Select(b => b.Path).ToList();
            if (candidates.Count == 0)
                return Fail($"There are no backups in {DatabaseBackups.FolderOf(dataDir)}. Nothing was changed.");
        }

        // The copy is checked, not the backup: the backup stays as it is, and what is checked is what goes in place. It is
        // made, checked and marked under a name of its own and becomes lineagent.db.restoring only when marked: a backup
        // can hold another restore's marks, and a copy killed half-way must never look finished (DatabaseStartup; review).
        var staged = DatabasePath + StagingSuffix;
        DatabaseFile.DeleteWithCompanions(staged);
        DatabaseFile.DeleteWithCompanions(DatabasePath + ".restoring");
        string? chosen = null;
        DatabaseInspection? check = null;
        // A disk without room for the copy: one line, and the part copied removed (probe: a stack trace, and a partial copy
        // that kept the disk full until the next start).
        int NoRoom(string what, Exception e)
        {
            DatabaseFile.DeleteWithCompanions(staged);
            var free = DatabaseFile.FreeBytes(DatabasePath) is { } f ? $" ({f / (1024 * 1024):N0} MB free)" : "";
            return Fail($"Could not {what}: {e.Message.ReplaceLineEndings(" ")}{free}. The copy was removed; nothing was changed. Make room on that disk and run this again.");
        }
        foreach (var candidate in candidates)
        {
            // What the listing marks DAMAGED is skipped here too, even where quick_check would pass (a file shorter than its
            // header says whose missing pages were free ones): the listing said "--yes skips it" (review).
            if (DatabaseFile.FirstLook(candidate) is { } bad)
            {
                output.WriteLine(bad.StartsWith("cannot be read", StringComparison.Ordinal)
                    ? $"Not using {candidate}: it {bad}." : $"Not using {candidate}: it is damaged: it {bad}.");
                continue;
            }
            try
            {
                DatabaseFile.CopyOwnerOnly(candidate, staged);
                if (new FileInfo(candidate + "-wal") is { Exists: true, Length: > 0 })
                    DatabaseFile.CopyOwnerOnly(candidate + "-wal", staged + "-wal");
            }
            catch (IOException e) when (DatabaseFile.NoRoom(staged) is not null) // another I/O error is not a full disk (review)
            {
                return NoRoom($"copy {candidate} to {staged}", e);
            }
            check = DatabaseFile.Inspect(staged, readOnly: false); // a -wal copied with it is folded in before the move
            if (check.Ok)
            {
                chosen = candidate;
                break;
            }
            output.WriteLine($"Not using {candidate}: it {check.Problem}.");
            DatabaseFile.DeleteWithCompanions(staged);
        }
        if (chosen is null)
            return Fail(from is null
                ? $"No backup in {DatabaseBackups.FolderOf(dataDir)} passed the checks. Nothing was changed."
                : $"{candidates[0]} is not a good copy. Nothing was changed.");

        var takenAt = DatabaseBackups.List(dataDir).FirstOrDefault(b => b.Path == chosen)?.TakenAt;
        var compared = CompareWithReplaced(staged);

        var stamp = time.GetUtcNow().UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var current = File.Exists(DatabasePath) ? DatabaseFile.Inspect(DatabasePath) : null;
        // Only a database found damaged (or empty) is called so; one that passed the checks, is newer than this agent
        // or could not be read (not proof of damage) was replaced by the user's choice.
        var label = current?.State is DatabaseState.Damaged or DatabaseState.Empty ? "damaged" : "replaced";
        var aside = $"{DatabasePath}.{label}-{stamp}";
        for (var n = 2; File.Exists(aside); n++)
            aside = $"{DatabasePath}.{label}-{stamp}-{n}";
        // The copy says where the database it replaces goes (or that there is none), so that a start after a kill between
        // the two moves finishes this restore, and only this one (DatabaseStartup.FinishRestore; review).
        long dueBefore, dueLater;
        (int Kept, long After, string? Problem) carried;
        try
        {
            carried = CarryOver(staged, takenAt);
            (dueBefore, dueLater) = MarkRestored(staged, Path.GetFileName(chosen), takenAt, compared, current is null ? "" : Path.GetFileName(aside));
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 10 or 13)
        {
            return NoRoom($"mark the copy {staged}", e);
        }
        foreach (var suffix in new[] { "-wal", "" }) // the -wal first: a .restoring is never without what its marks went into
            if (File.Exists(staged + suffix))
                File.Move(staged + suffix, DatabasePath + ".restoring" + suffix, overwrite: true);
        DatabaseFile.DeleteWithCompanions(staged);
        staged = DatabasePath + ".restoring";
        var moved = new List<string>();
        foreach (var suffix in DatabaseFile.Companions.Prepend(""))
        {
            if (!File.Exists(DatabasePath + suffix))
                continue;
            File.Move(DatabasePath + suffix, aside + suffix);
            moved.Add(aside + suffix);
        }
        File.Move(staged, DatabasePath);
        DatabaseFile.DeleteWithCompanions(staged);
        DatabaseFile.RestrictToOwner(DatabasePath);

        if (current is null)
            output.WriteLine($"There was no {DatabasePath}.");
        else
            output.WriteLine($"The current database {(current.Ok ? "passed the checks" : current.Problem)}; moved it aside to {string.Join(", ", moved)} (kept: delete it yourself once you are sure).");
        var taken = takenAt;
        var when = taken is not { } t ? ""
            : t > time.GetUtcNow() + DatabaseBackups.FutureSlack
            ? $", dated {t.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, in the future (taken while the clock was wrong; its age is unknown)"
            : $", taken {t.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, {DatabaseBackups.Age(time.GetUtcNow() - t)} ago";
        output.WriteLine($"Restored {chosen}{when} (quick_check ok, schema version {check!.Version}, {Messages(DatabasePath)}) as {DatabasePath} (mode 0600).");
        if (taken is not null)
            output.WriteLine(carried.After > 0
                ? $"{carried.After} message(s) the agent stored after that backup are not in it (the database moved aside still has them)."
                : "Anything the agent stored after that backup is not in it.");
        if (carried.Kept > 0)
            output.WriteLine($"{carried.Kept} opt-out(s) that the database it replaces holds and the backup does not (given after the backup) were kept: nothing is sent to them.");
        if (carried.Problem is not null)
            output.WriteLine($"The opt-outs of the database it replaces could not be read ({carried.Problem}): add again any given after the backup (POST /api/suppressions).");
        if (compared.Sent.Count > 0)
            output.WriteLine($"{compared.Sent.Count} pending message(s) in it were sent after the backup, as the database it replaces shows: " +
                             "the agent marks them sent again when it starts (their follow-ups go on from there), instead of sending them again.");
        if (compared.WentOn.Count > 0)
            output.WriteLine($"{compared.WentOn.Count} pending message(s) in it were sending or failed after the backup, as the database it replaces shows: " +
                             "the agent fails them as 'restored' when it starts instead of sending them again (retry with force=true any that did not go out).");
        if (compared.Cancelled.Count > 0)
            output.WriteLine($"{compared.Cancelled.Count} pending message(s) in it were cancelled after the backup, as the database it replaces shows: the agent cancels them again when it starts.");
        if (dueBefore > 0)
            output.WriteLine($"{dueBefore} other pending message(s) in it were due before now: they may have been sent after the backup, so the agent " +
                             "fails them as 'restored' when it starts instead of sending them (GET /api/messages?status=failed; retry with force=true any that did not go out).");
        if (dueLater > 0)
            output.WriteLine($"{dueLater} message(s) are scheduled after now and will be sent" + (compared.Changed > 0
                ? $"; {compared.Changed} pending message(s) had been changed after the backup (time or text) and are back as they were in it (GET /api/messages?status=scheduled)."
                : "."));
        if (compared.Problem is not null)
            output.WriteLine($"{compared.Unchecked} pending message(s) in it could not be checked against the database it replaces ({compared.Problem}): " +
                             "any of them cancelled or changed after the backup is back as it was in it, and one moved earlier and sent after the backup " +
                             "would go out again at its old time: check them (GET /api/messages?status=scheduled).");
        output.WriteLine("Start the agent again: lineagent run, with the options you start it with (--dry-run, --data-dir) (installed: launchctl kickstart -k gui/$UID/com.lineagent.agent; after a launchctl bootout: launchctl enable gui/$UID/com.lineagent.agent, then launchctl bootstrap gui/$UID ~/Library/LaunchAgents/com.lineagent.agent.plist).");
        return 0;
    }

    /// <summary>
    /// Marks the staged copy for the agent (<see cref="RestoredAtKey"/>) and counts its pending messages due by now and
    /// later. The WAL is folded into the file before it is moved in place (only the main file is moved).
    /// </summary>
    private (long DueBefore, long DueLater) MarkRestored(string staged, string backupName, DateTimeOffset? takenAt, Comparison compared, string asideName)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = staged, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        c.Open();
        var settled = System.Text.Json.JsonSerializer.Serialize(compared.Settled.ToArray());
        long Scalar(string sql)
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            cmd.Parameters.AddWithValue("@Now", now);
            cmd.Parameters.AddWithValue("@Settled", settled);
            return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
        }
        const string others = "status IN ('scheduled','queued') AND id NOT IN (SELECT value FROM json_each(@Settled))";
        var dueBefore = Scalar($"SELECT COUNT(*) FROM messages WHERE {others} AND due_at <= @Now");
        var dueLater = Scalar($"SELECT COUNT(*) FROM messages WHERE {others} AND due_at > @Now");
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "INSERT INTO bridge_state (key, value) VALUES (@AtKey, @At), (@FromKey, @From), (@SentKey, @Sent), (@WentOnKey, @WentOn), " +
                              "(@CancelledKey, @Cancelled), (@AsideKey, @Aside) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
            cmd.Parameters.AddWithValue("@AsideKey", AsideKey);
            cmd.Parameters.AddWithValue("@Aside", asideName);
            cmd.Parameters.AddWithValue("@SentKey", SentKey);
            cmd.Parameters.AddWithValue("@Sent", System.Text.Json.JsonSerializer.Serialize(compared.Sent, MarkJson));
            cmd.Parameters.AddWithValue("@AtKey", RestoredAtKey);
            cmd.Parameters.AddWithValue("@At", now.ToString(CultureInfo.InvariantCulture));
            cmd.Parameters.AddWithValue("@FromKey", RestoredFromKey);
            cmd.Parameters.AddWithValue("@From", takenAt is { } t ? $"{backupName}, taken {t.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC" : backupName);
            cmd.Parameters.AddWithValue("@WentOnKey", WentOnKey);
            cmd.Parameters.AddWithValue("@WentOn", System.Text.Json.JsonSerializer.Serialize(compared.WentOn));
            cmd.Parameters.AddWithValue("@CancelledKey", CancelledKey);
            cmd.Parameters.AddWithValue("@Cancelled", System.Text.Json.JsonSerializer.Serialize(compared.Cancelled));
            cmd.ExecuteNonQuery();
        }
        // A Messages send in the backup that was handed off but had not stored its script's chat.db baseline yet may have
        // gone out after the backup was taken: the start after the restore must not take it as never sent (review). A backup
        // from before migration 016 gets the same at its migration.
        if (Scalar("SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = 'script_baseline'") == 1)
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = LineAgent.Messages.MessageSql.ScriptMayHaveStarted;
            cmd.Parameters.AddWithValue("@Unread", LineAgent.Messages.MessageRow.BaselineUnread);
            cmd.ExecuteNonQuery();
        }
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            cmd.ExecuteNonQuery();
        }
        return (dueBefore, dueLater);
    }

    /// <summary>
    /// The opt-outs the database being replaced holds and the backup does not (given after it) are copied into the copy: a
    /// restore must never send to someone who said stop (probe: an opt-out added after the backup was dropped without a
    /// word). Also counts the messages that database stored after the backup, which the copy does not have.
    /// </summary>
    private (int Kept, long After, string? Problem) CarryOver(string staged, DateTimeOffset? takenAt)
    {
        if (!File.Exists(DatabasePath))
            return (0, 0, null);
        var optOuts = new List<(string Address, string Reason, string Source, string? MessageId, long CreatedAt)>();
        long after = 0;
        try
        {
            using var old = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            old.Open();
            using (var cmd = old.CreateCommand())
            {
                cmd.CommandText = "SELECT address, reason, source, message_id, created_at FROM suppressions";
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                    optOuts.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetInt64(4)));
            }
            if (takenAt is { } t)
            {
                using var cmd = old.CreateCommand();
                cmd.CommandText = "SELECT COUNT(*) FROM messages WHERE created_at > @At";
                cmd.Parameters.AddWithValue("@At", t.ToUnixTimeMilliseconds());
                after = Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
            }
        }
        catch (Exception e) when (e is SqliteException or InvalidCastException or InvalidOperationException)
        {
            return (0, 0, e is SqliteException q ? SqliteMessageOf(q) : e.Message);
        }
        var kept = 0;
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = staged, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        c.Open();
        try
        {
            kept = Insert();
        }
        catch (SqliteException e) when (e.SqliteErrorCode is not (10 or 13)) // a full disk is the caller's
        {
            return (0, after, SqliteMessageOf(e));
        }
        return (kept, after, null);

        int Insert()
        {
            using var tx = c.BeginTransaction();
            using (var insert = c.CreateCommand())
            {
                insert.Transaction = tx;
                insert.CommandText = "INSERT INTO suppressions (address, reason, source, message_id, created_at) VALUES (@A, @R, @S, @M, @C) ON CONFLICT (address) DO NOTHING";
                var (a, r, src, m, at) = (insert.Parameters.Add("@A", SqliteType.Text), insert.Parameters.Add("@R", SqliteType.Text),
                    insert.Parameters.Add("@S", SqliteType.Text), insert.Parameters.Add("@M", SqliteType.Text), insert.Parameters.Add("@C", SqliteType.Integer));
                foreach (var o in optOuts)
                {
                    (a.Value, r.Value, src.Value, m.Value, at.Value) = (o.Address, o.Reason, o.Source, (object?)o.MessageId ?? DBNull.Value, o.CreatedAt);
                    kept += insert.ExecuteNonQuery();
                }
            }
            tx.Commit();
            return kept;
        }
    }

    private static string SqliteMessageOf(SqliteException e) => $"SQLite error {e.SqliteErrorCode}: {e.Message.ReplaceLineEndings(" ")}";

    /// <summary>A pending message of the backup that the database it replaces shows sent: when, and the channel's reference.</summary>
    public sealed record SentAfterBackup(string Id, long SentAt, string? Ref);

    /// <summary>
    /// What the database being replaced says of the backup's pending messages. <see cref="Sent"/>: sent after the backup
    /// (marked sent again, with its time, so a sequence's next step follows it); <see cref="WentOn"/>: sending or failed
    /// after it (may have gone out: failed as `restored`, never sent again); <see cref="Cancelled"/>: cancelled after it;
    /// <see cref="Changed"/>: still pending but edited or rescheduled; <see cref="Unchecked"/>: not readable there (a
    /// damaged page, no such file), with <see cref="Problem"/> saying why.
    /// </summary>
    private sealed record Comparison(List<SentAfterBackup> Sent, List<string> WentOn, List<string> Cancelled, int Changed, int Unchecked, string? Problem)
    {
        public IEnumerable<string> Settled => Sent.Select(x => x.Id).Concat(WentOn).Concat(Cancelled);
    }

    /// <summary>
    /// Reads the backup's pending messages back from the database the restore replaces, one id at a time (a damaged page
    /// costs only the rows on it), opened read-only: the file is left as it was. Without this, a message moved earlier and
    /// sent after the backup went out a second time at its old time. When the database being replaced is itself a restored
    /// copy the agent has not started on yet (a second restore), what the first restore found is kept.
    /// </summary>
    private Comparison CompareWithReplaced(string staged)
    {
        // What a user changes of a pending message (PATCH): its text, subject and time. Not updated_at: a pacing hold
        // changes that too, and is no edit.
        const string Version = "json_array(content, subject, scheduled_at)";
        var pending = new List<(string Id, string Version)>();
        using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = staged, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString()))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT id, {Version} FROM messages WHERE status IN ('scheduled','queued')";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
                pending.Add((reader.GetString(0), reader.GetString(1)));
        }
        List<SentAfterBackup> sent = [];
        List<string> wentOn = [], cancelled = [];
        if (pending.Count == 0)
            return new Comparison(sent, wentOn, cancelled, 0, 0, null);
        if (!File.Exists(DatabasePath))
            return new Comparison(sent, wentOn, cancelled, 0, pending.Count, $"there is no {DatabasePath}");
        int changed = 0, unchecked_ = 0;
        string? problem = null;
        try
        {
            using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            c.Open();
            var earlier = EarlierRestoreMarks(c);
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT status, {Version}, sent_at, channel_ref FROM messages WHERE id = @Id";
            var id = cmd.Parameters.Add("@Id", SqliteType.Text);
            foreach (var m in pending)
            {
                id.Value = m.Id;
                try
                {
                    using var reader = cmd.ExecuteReader();
                    if (!reader.Read())
                    {
                        unchecked_++;
                        problem ??= "some of them are not in it";
                        continue;
                    }
                    // A damaged record can read back as NULL without an error from SQLite: unchecked, not a crash.
                    var status = reader.IsDBNull(0) ? null : reader.GetString(0);
                    switch (status)
                    {
                        case "scheduled" or "queued" when earlier.TryGetValue(m.Id, out var mark):
                            if (mark is SentAfterBackup s) sent.Add(s);
                            else if (mark is "cancelled") cancelled.Add(m.Id);
                            else wentOn.Add(m.Id);
                            break;
                        case "scheduled" or "queued":
                            if (reader.IsDBNull(1) || reader.GetString(1) != m.Version)
                                changed++;
                            break;
                        case "cancelled":
                            cancelled.Add(m.Id);
                            break;
                        case "sent" when !reader.IsDBNull(2):
                            sent.Add(new SentAfterBackup(m.Id, reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
                            break;
                        case "sent" or "sending" or "failed":
                            wentOn.Add(m.Id);
                            break;
                        default:
                            unchecked_++;
                            problem ??= $"a record reads back as status '{status ?? "NULL"}'";
                            break;
                    }
                }
                catch (Exception e) when (e is SqliteException or InvalidOperationException or InvalidCastException or FormatException)
                {
                    unchecked_++;
                    problem ??= $"SQLite: {e.Message}";
                }
            }
        }
        catch (SqliteException e)
        {
            return new Comparison([], [], [], 0, pending.Count, $"SQLite: {e.Message}");
        }
        return new Comparison(sent, wentOn, cancelled, changed, unchecked_, problem);
    }

    /// <summary>
    /// The marks a restore left in <paramref name="c"/> that no agent has acted on yet (it is a restored copy, and this is a
    /// second restore before a start): id → a <see cref="SentAfterBackup"/>, "went_on" or "cancelled". Empty when none.
    /// </summary>
    private static Dictionary<string, object> EarlierRestoreMarks(SqliteConnection c)
    {
        var marks = new Dictionary<string, object>();
        try
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT key, value FROM bridge_state WHERE key IN ('{SentKey}', '{WentOnKey}', '{CancelledKey}')";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                var value = reader.GetString(1);
                switch (reader.GetString(0))
                {
                    case SentKey:
                        foreach (var s in System.Text.Json.JsonSerializer.Deserialize<List<SentAfterBackup>>(value, MarkJson) ?? [])
                            marks[s.Id] = s;
                        break;
                    case WentOnKey:
                        foreach (var x in System.Text.Json.JsonSerializer.Deserialize<List<string>>(value) ?? [])
                            marks[x] = "went_on";
                        break;
                    case CancelledKey:
                        foreach (var x in System.Text.Json.JsonSerializer.Deserialize<List<string>>(value) ?? [])
                            marks[x] = "cancelled";
                        break;
                }
            }
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException or System.Text.Json.JsonException)
        {
            // No marks to keep (an older schema, a damaged page): the rows themselves are compared as usual.
        }
        return marks;
    }

    private static readonly System.Text.Json.JsonSerializerOptions MarkJson = new(System.Text.Json.JsonSerializerDefaults.Web);

    private string Describe(string path)
    {
        if (!File.Exists(path))
            return $"{path} does not exist";
        var found = DatabaseFile.Inspect(path);
        return found.Ok ? $"{path} passes the checks (schema version {found.Version}, {found.Bytes / 1024} KB, {Messages(path)})" : $"{path} {found.Problem}";
    }

    private static string Messages(string path)
    {
        try
        {
            using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT COUNT(*) FROM messages;";
            var count = Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
            return count == 1 ? "1 message" : $"{count} messages";
        }
        catch (SqliteException)
        {
            return "messages not countable";
        }
    }

    /// <summary>The data dir's lock, as the agent takes it (an exclusive lock on agent.lock); null while an agent holds it.</summary>
    private int Fail(string message)
    {
        errors.WriteLine(message);
        return Refused;
    }
}
