using System.Globalization;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>
/// What the agent does with lineagent.db before anything else uses it: a missing file is a fresh start (created 0600,
/// migrated under a temporary name, then renamed, so a crash never leaves an empty lineagent.db behind); an existing
/// one is checked (<see cref="DatabaseFile.Inspect"/>) and refused with a <see cref="DatabaseUnusableException"/> when it
/// is empty, damaged, unreadable or newer than this agent; its mode is tightened to 0600; it is backed up before a
/// migration changes its schema; then it is migrated.
/// </summary>
public static class DatabaseStartup
{
    public static Db Open(string path, StorageOptions options, TimeProvider time, ILogger log)
    {
        path = Path.GetFullPath(path);
        var creating = path + ".creating";
        DatabaseFile.DeleteWithCompanions(creating);
        DeleteQuietly(path + DatabaseRestore.StagingSuffix, log); // a restore killed before it marked its copy
        if (!File.Exists(path) && File.Exists(path + ".restoring"))
            FinishRestore(path, log);
        else if (File.Exists(path) && File.Exists(path + ".restoring"))
        {
            // A restore that never moved the database aside (killed before, or refused): its copy is stale, and must not be put
            // in place if this database goes missing later (review).
            if (DeleteQuietly(path + ".restoring", log))
                log.LogInformation("Removed {Staged}, left by a restore that did not finish (the database was still in place)", path + ".restoring");
        }

        if (!File.Exists(path))
        {
            // A missing file next to backups of it is a database that went missing (moved, evicted by a sync
            // service, a restore cut short), not a first start: a fresh one would forget every scheduled message and
            // Idempotency-Key, and daily backups would then rotate the good copies out.
            if (MissingButKnown(path) is { } evidence)
                throw new DatabaseUnusableException(path, $"is missing, but {evidence}",
                    $"Put it back, or restore the newest backup with: lineagent restore --data-dir {DatabaseFile.ShellQuote(Path.GetDirectoryName(path)!)} --yes. " +
                    $"To start with an empty database on purpose, move the backups aside first (mv {DatabaseFile.ShellQuote(DatabaseBackups.FolderOf(Path.GetDirectoryName(path)!))} " +
                    $"{DatabaseFile.ShellQuote(DatabaseBackups.FolderOf(Path.GetDirectoryName(path)!) + ".old")})" +
                    (MovedAside(path).Count > 0 ? $", and the databases a restore moved aside ({Path.GetFileName(path)}.replaced-*, .damaged-*)" : ""));
            try
            {
                CreateFresh(path, creating, time, log);
            }
            catch (Exception e) when (e is SqliteException { SqliteErrorCode: 10 or 13 or 14 } or IOException && DatabaseFile.NoRoom(path) is { } free)
            {
                // A first start on a full disk: a stack trace and exit 1 before, and the half-made file left behind (probe).
                DatabaseFile.DeleteWithCompanions(creating);
                var dataDir = Path.GetDirectoryName(path)!;
                throw new DatabaseUnusableException(path, string.Create(CultureInfo.InvariantCulture,
                        $"cannot be created: the disk holding it is full ({free / 1024} KB free)"),
                    $"Nothing was stored yet, so nothing is lost: make room on that disk (df -h {DatabaseFile.ShellQuote(dataDir)}), then start again (launchd does, every 10 s)", e);
            }
        }
        else
        {
            DatabaseFile.RestrictToOwner(path, log);
            // launchd restarts a refused agent every 10 s (exit 78 is not a clean exit): the same file is not checked again
            // (quick_check reads all of it, seconds for a large one) until it changes.
            if (RefusalMemo.Read(path) is { } remembered)
                throw Refusal(remembered);
            // Before SQLite opens it: it would keep what comes before the damage and reset the -wal at its next checkpoint.
            // SQLite follows a linked database: its -wal is next to the file the link names.
            if (WalFile.Damage(DatabaseFile.Target(path).FullName + "-wal") is { } walDamage)
                throw new DatabaseUnusableException(path, walDamage,
                    $"Nothing was changed. Keep the files; restore the last good copy with: lineagent restore --data-dir {DatabaseFile.ShellQuote(Path.GetDirectoryName(path)!)}, " +
                    $"or, to go on with what comes before the damage, copy the data directory aside, then run sqlite3 {DatabaseFile.ShellQuote(path)} " +
                    "'PRAGMA wal_checkpoint(TRUNCATE);' and start again");
            var found = DatabaseFile.Inspect(path);
            log.LogDebug("Checked {Path} ({Bytes} bytes, schema {Version}) in {Ms:0} ms", path, found.Bytes, found.Version, found.Elapsed.TotalMilliseconds);
            if (!found.Ok)
            {
                RefusalMemo.Write(path, found);
                throw Refusal(found);
            }
            RefusalMemo.Clear(path);
            var known = Migrator.Load().Count;
            if (found.Version > 0 && found.Version < known)
                BackupBeforeMigration(path, found.Version, known, options, time, log);
        }

        var db = new Db(path);
        Migrator.Migrate(db);
        File.Delete(path + ".premigration"); // migrated: the next migration makes its own copy
        IndexUnindexedMessages(db, log);
        DatabaseFile.RestrictToOwner(path, log);
        return db;
    }

    /// <summary>
    /// What says a missing lineagent.db existed before: backups of it, or a copy a restore moved aside (.replaced-*,
    /// .damaged-*). Null on a first start. (A -wal alone is kept aside, as before.)
    /// </summary>
    private static string? MissingButKnown(string path)
    {
        var backups = DatabaseBackups.List(Path.GetDirectoryName(path)!);
        if (backups.Count > 0)
            return $"this data directory has {backups.Count} backup(s) of it (the newest {backups[0].Name})";
        var aside = MovedAside(path);
        return aside.Count > 0 ? $"a restore moved it aside as {Path.GetFileName(aside[0])}" : null;
    }

    /// <summary>Deletes a leftover file and its companions; false (and a warning) when the disk refuses (review: a stack trace).</summary>
    private static bool DeleteQuietly(string file, ILogger log)
    {
        if (!File.Exists(file) && !DatabaseFile.Companions.Any(c => File.Exists(file + c)))
            return false;
        try
        {
            DatabaseFile.DeleteWithCompanions(file);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("Could not remove {File}: {Error}", file, e.Message);
            return false;
        }
    }

    /// <summary>The restore's record of where the database it replaces went ("" for none), when the copy is marked; else null.</summary>
    private static string? RestoreAside(string staged)
    {
        try
        {
            using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = staged, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT (SELECT value FROM bridge_state WHERE key = @At) IS NOT NULL, (SELECT value FROM bridge_state WHERE key = @Aside)";
            cmd.Parameters.AddWithValue("@At", DatabaseRestore.RestoredAtKey);
            cmd.Parameters.AddWithValue("@Aside", DatabaseRestore.AsideKey);
            using var r = cmd.ExecuteReader();
            return r.Read() && r.GetInt64(0) == 1 && !r.IsDBNull(1) ? r.GetString(1) : null;
        }
        catch (SqliteException)
        {
            return null;
        }
    }

    /// <summary>Databases a restore moved aside (lineagent.db.replaced-*, .damaged-*), newest name first; not their -wal or -shm.</summary>
    private static List<string> MovedAside(string path) =>
        Directory.EnumerateFiles(Path.GetDirectoryName(path)!, Path.GetFileName(path) + ".*")
            .Where(f => Path.GetFileName(f).Length > Path.GetFileName(path).Length + 1 // the pattern also matches lineagent.db itself
                        && Path.GetFileName(f)[(Path.GetFileName(path).Length + 1)..] is var rest
                        && (rest.StartsWith("replaced-", StringComparison.Ordinal) || rest.StartsWith("damaged-", StringComparison.Ordinal))
                        && !DatabaseFile.Companions.Any(c => rest.EndsWith(c, StringComparison.Ordinal)))
            .OrderByDescending(f => f, StringComparer.Ordinal).ToList();

    /// <summary>
    /// A restore cut short (a crash or a kill) after it moved the database aside and before it moved its checked copy,
    /// lineagent.db.restoring, into place: that copy is put in place now. A fresh empty database was created instead
    /// (black-box probe, with a kill injected at the rename): every scheduled message and Idempotency-Key gone. The copy
    /// was checked and marked before the database was moved aside; it is checked again here. When a -wal or -shm of the
    /// database moved aside is still under the database's own name (the crash came between those moves), nothing is
    /// moved: it would be replayed into the restored copy.
    /// </summary>
    private static void FinishRestore(string path, ILogger log)
    {
        var staged = path + ".restoring";
        var stray = DatabaseFile.Companions.Select(c => path + c).Where(File.Exists).ToList();
        if (stray.Count > 0)
            throw new DatabaseUnusableException(path, $"is missing: a restore was cut short while it moved the database aside ({string.Join(", ", stray.Select(Path.GetFileName))} " +
                $"of it still there), and {Path.GetFileName(staged)} is the checked copy it was putting in place",
                $"Move {string.Join(" and ", stray.Select(f => DatabaseFile.ShellQuote(f)))} next to the database they belong to (the newest {Path.GetFileName(path)}.replaced-* " +
                $"or .damaged-* file: the same name with -wal or -shm after it), then start again: the restore is finished then");
        var found = DatabaseFile.Inspect(staged);
        if (!found.Ok)
            throw new DatabaseUnusableException(path, $"is missing: a restore was cut short, and {Path.GetFileName(staged)}, the copy it was putting in place, {found.Problem}",
                $"Run the restore again: lineagent restore --data-dir {DatabaseFile.ShellQuote(Path.GetDirectoryName(path)!)}");
        // Only a copy the restore had finished preparing (marked), whose own record of the database it replaces holds: that
        // file moved aside, or none there was (review: any old .replaced-* file and a copy from another restore would do).
        // Otherwise it is refused as a missing database (or, with nothing to say it existed, a fresh start), as before.
        if (RestoreAside(staged) is not { } aside || (aside.Length > 0 && !File.Exists(Path.Combine(Path.GetDirectoryName(path)!, aside))))
            return;
        // Its -wal (a kill during the restore's checkpoint) folded in first: only the main file is moved (review). A disk that
        // refuses it is said in one line, not a stack trace (review).
        try
        {
            using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = staged, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString()))
            {
                c.Open();
                using var cmd = c.CreateCommand();
                cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
                cmd.ExecuteNonQuery();
            }
            File.Move(staged, path);
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            throw new DatabaseUnusableException(path, $"is missing: a restore was cut short, and its checked copy {Path.GetFileName(staged)} could not be put in place " +
                $"({DatabaseFile.OneLine(e.Message)})", "Nothing was lost: make room on the disk (or make it writable), then start again");
        }
        DatabaseFile.DeleteWithCompanions(staged);
        log.LogWarning("Finished a restore that was cut short: moved its checked copy {Staged} to {Path} (the database it replaced: {Aside})",
            staged, path, aside.Length > 0 ? aside : "none, there was no database");
    }

    /// <summary>The one line `lineagent run` prints for a database it must not use.</summary>
    public static DatabaseUnusableException Refusal(DatabaseInspection found)
    {
        var dataDir = Path.GetDirectoryName(found.Path)!;
        var restore = $"lineagent restore --data-dir {DatabaseFile.ShellQuote(dataDir)}";
        var hasBackup = DatabaseBackups.List(dataDir).Count > 0;
        var advice = found.State switch
        {
            DatabaseState.Newer => $"Run the newer LineAgent again, or go back to a backup made by this version with: {restore}",
            DatabaseState.DiskFull => $"Nothing of it was changed: make room on that disk (df -h {DatabaseFile.ShellQuote(dataDir)}), then start again " +
                "(launchd does, every 10 s); do not restore a backup for this",
            DatabaseState.Missing => "Nothing was changed: mount the volume it is on or put the file back; a link that points nowhere is not replaced by an empty database",
            DatabaseState.Unreadable => $"Check the file's owner and mode (ls -l {DatabaseFile.ShellQuote(found.Path)}) and the disk; if it is damaged, restore the last good copy with: {restore}",
            _ when hasBackup => $"Stop here; restore the last good copy with: {restore}",
            DatabaseState.Empty => $"Stop here; there is no backup in {DatabaseFile.ShellQuote(DatabaseBackups.FolderOf(dataDir))}: to start with an empty database on purpose, move the file aside (mv {DatabaseFile.ShellQuote(found.Path)} {DatabaseFile.ShellQuote(found.Path + ".empty")})",
            _ => $"Stop here; there is no backup in {DatabaseFile.ShellQuote(DatabaseBackups.FolderOf(dataDir))}: keep the file, and try sqlite3 {DatabaseFile.ShellQuote(found.Path)} .recover > recovered.sql",
        };
        return new DatabaseUnusableException(found.Path, found.Problem ?? found.State.ToString(), advice);
    }

    /// <summary>
    /// Messages reach the full-text indexes when the writer catches them up (MessageStore.SearchIndex: no insert
    /// trigger, not at every commit). Rows a stop or a crash left owed, and rows put into the table by anything else (a
    /// hand edit, an old copy), are added here at start. When the disk refuses that write (full, read-only, an I/O
    /// error), the agent still starts, so /api/status can say why: the rows stay owed (<see cref="Db.SearchIndexBehind"/>)
    /// and the writer adds them once the disk takes the write.
    /// </summary>
    private static void IndexUnindexedMessages(Db db, ILogger log)
    {
        try
        {
            using var c = db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = Messages.MessageSql.IndexNewForSearch;
            var added = cmd.ExecuteNonQuery();
            if (added > 0)
                log.LogInformation("Added {Count} entries to the two search indexes, for messages not yet in them (left by the last stop, or written outside the agent)", added);
        }
        catch (SqliteException e) when (StorageHealth.FaultOf(e) is { } fault)
        {
            db.SearchIndexBehind = true;
            log.LogWarning("Could not add the messages left out of the search indexes ({Fault}: {Error}); the agent starts, and adds them once the disk takes the write",
                fault, e.Message);
        }
    }

    private static void CreateFresh(string path, string creating, TimeProvider time, ILogger log)
    {
        foreach (var companion in DatabaseFile.Companions.Select(c => path + c).Where(File.Exists))
        {
            // A -wal without its database would be replayed into the new one: keep it, out of the way.
            var aside = $"{companion}.orphaned-{time.GetUtcNow().UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}";
            File.Move(companion, aside, overwrite: true);
            log.LogWarning("{File} was there without its database; moved it to {Aside}", companion, aside);
        }
        using (DatabaseFile.CreateOwnerOnly(creating)) { }
        using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder
               {
                   DataSource = creating,
                   Mode = SqliteOpenMode.ReadWrite,
                   Pooling = false,
               }.ToString()))
        {
            connection.Open();
            Migrator.Migrate(connection, path);
            // The migrations are in the -wal. Its checkpoint at close reports nothing: one that ran out of room (probe M: 600-800
            // KB free) left the file cut short, which was then put in place with its -wal deleted ("malformed", and every later
            // start refused the never-used database as damaged). Checkpointed here, where a failure is an error (SQLITE_FULL).
            using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            using var result = checkpoint.ExecuteReader();
            if (!result.Read() || result.GetInt64(0) != 0 || result.GetInt64(1) != result.GetInt64(2))
                throw new IOException($"the new database's journal could not be written into it ({Path.GetFileName(creating)})");
        }
        if (new FileInfo(creating + "-wal") is { Exists: true, Length: > 0 })
            throw new IOException($"the new database's journal was left behind ({Path.GetFileName(creating)}-wal)");
        DatabaseFile.FlushToDisk(creating);
        File.Move(creating, path);
        DatabaseFile.DeleteWithCompanions(creating);
        log.LogInformation("Created the database {Path} (mode 0600)", path);
    }

    /// <summary>
    /// A copy in the old schema before the migration changes it. Without one the migration does not run (before, it ran
    /// anyway, leaving no copy the "newer schema" advice could send the user back to). A start that fails after the
    /// copy was made (launchd restarts it every 10 s) does not make another each time: Storage:BackupsKept of those
    /// would rotate the older good copies out.
    /// </summary>
    private static void BackupBeforeMigration(string path, int from, int to, StorageOptions options, TimeProvider time, ILogger log)
    {
        // The copy an earlier start made is used again only while the database is exactly as it was then (size and
        // modification time of the file and of its -wal, kept in lineagent.db.premigration): not a daily backup, nor a
        // copy older than writes made since.
        var memo = path + ".premigration";
        if (File.Exists(memo) && File.ReadAllLines(memo) is [var name, var recorded, ..]
            && recorded == FileState(path) && File.Exists(Path.Combine(DatabaseBackups.FolderOf(Path.GetDirectoryName(path)!), name)))
        {
            log.LogInformation("{Backup} is the copy of {Path} from before this migration, and the file has not changed since; not making another",
                name, path);
            return;
        }
        try
        {
            var backup = DatabaseBackups.Create(path, time.GetUtcNow(), options.BackupsKept);
            log.LogInformation("Backed up {Path} (schema version {From}) to {Backup} before migrating it to version {To}", path, from, backup.Path, to);
            // After the copy: its connection may have checkpointed a leftover -wal into the file. Best effort: without
            // the memo the next start only makes one more copy.
            try { File.WriteAllLines(memo, [Path.GetFileName(backup.Path), FileState(path)]); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log.LogWarning(e, "Could not write {Memo}", memo); }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new DatabaseUnusableException(path,
                $"was not migrated from schema version {from} to {to}: the backup before the migration failed ({e.Message.ReplaceLineEndings(" ")})",
                "Nothing was changed. Free some space (a backup takes about the size of the database) and start the agent again.", e);
        }
    }

    private static string FileState(string path)
    {
        path = DatabaseFile.Target(path).FullName; // a link's own size and time never change
        // An empty -wal (every open makes one) holds nothing: only its content counts, not when it was made.
        string Of(string file) => new FileInfo(file) is { Exists: true, Length: > 0 } f
            ? $"{f.Length}@{f.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)}" : "none";
        return $"{Of(path)} {Of(path + "-wal")}";
    }
}
