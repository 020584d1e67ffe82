using System.Collections.Concurrent;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using static LineAgent.Tests.Storage.StorageFixtures;

namespace LineAgent.Tests.Storage;

/// <summary>Backups, the start-up check and `restore`, in process (the process-level behaviour is in the other Storage tests).</summary>
public sealed class BackupTests
{
    private TempDir _dir = null!;
    private string DbPath => _dir.File("lineagent.db");

    [SetUp]
    public void SetUp() => _dir = new TempDir();

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    private Db NewDatabase(int messages = 5)
    {
        var db = DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance);
        using var c = db.Open();
        for (var i = 0; i < messages; i++)
            c.Execute("""
                INSERT INTO messages (id, content, type, requested_type, status, line_id, recipient_phone, due_at, created_at, updated_at)
                VALUES (@id, 'hello', 'sms', 'auto', 'scheduled', 'default', '+12025550123', 1, 1, 1)
                """, new { id = $"msg_{i:D6}" });
        c.Execute(LineAgent.Messages.MessageSql.IndexNewForSearch); // as the writer does before its commit
        return db;
    }

    [Test]
    public void Create_ShouldKeepTheNewestBackups_AllPrivate_AndLeaveNoTemporaryFile()
    {
        NewDatabase();
        var t0 = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
        for (var i = 0; i < 5; i++)
            DatabaseBackups.Create(DbPath, t0.AddHours(i), keep: 3);

        var list = DatabaseBackups.List(_dir.Path);
        Assert.That(list.Select(b => b.TakenAt), Is.EqualTo(new[] { t0.AddHours(4), t0.AddHours(3), t0.AddHours(2) }));
        Assert.That(list[0].Name, Is.EqualTo("lineagent-20261126T160000.000Z.db"));
        Assert.That(list.Select(b => Mode(b.Path)), Is.All.EqualTo(OwnerOnly));
        Assert.That(Directory.GetFiles(_dir.File("backups")), Has.Length.EqualTo(3));
        Assert.That(list.Select(b => Count(b.Path)), Is.All.EqualTo(5));
        Assert.That(DatabaseFile.Inspect(list[0].Path).Ok, Is.True);
    }

    [Test]
    public void Create_ShouldIgnoreAndRemoveAHalfWrittenCopy()
    {
        NewDatabase();
        var folder = Directory.CreateDirectory(_dir.File("backups")).FullName;
        var half = Path.Combine(folder, ".lineagent-20261126T110000.000Z.db.tmp");
        File.WriteAllBytes(half, new byte[1000]);
        Assert.That(DatabaseBackups.List(_dir.Path), Is.Empty, "a temporary copy is never a backup");

        DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow, keep: 7);

        Assert.That(File.Exists(half), Is.False);
        Assert.That(DatabaseBackups.List(_dir.Path), Has.Count.EqualTo(1));
    }

    [Test]
    public void AFailingBackup_ShouldBeLogged_KeepTheOldOnes_AndNotThrow()
    {
        var db = NewDatabase();
        var old = DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow.AddDays(-1), keep: 1);
        // The database file vanishes under the agent (an extreme case): VACUUM INTO cannot read it.
        var log = new ListLogger<BackupService>();
        var service = new BackupService(new Db(_dir.File("gone.db")), Options.Create(new StorageOptions { BackupsKept = 1 }), TimeProvider.System, log);

        Assert.That(service.BackupNow(), Is.Null);

        Assert.That(log.Errors, Has.Count.EqualTo(1));
        Assert.That(log.Errors[0], Does.Contain("failed; the agent goes on"));
        Assert.That(DatabaseBackups.List(_dir.Path).Select(b => b.Path), Is.EqualTo(new[] { old.Path }), "nothing pruned after a failure");
        Assert.That(Directory.GetFiles(_dir.File("backups")), Has.Length.EqualTo(1), "the failed temporary copy is gone");
        Assert.That(db, Is.Not.Null);
    }

    [Test]
    public async Task Schedule_ShouldNotBackUpAtTheStart_ButAfterFirstBackupAfter_ThenEveryPeriod()
    {
        var db = NewDatabase();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
        // A backup killed before its rename: its temporary copy (as large as the database) waited for the next backup.
        var unfinished = Path.Combine(DatabaseBackups.FolderOf(_dir.Path), ".lineagent-20261126T110000.000Z.db.tmp");
        Directory.CreateDirectory(Path.GetDirectoryName(unfinished)!);
        File.WriteAllBytes(unfinished, new byte[4096]);
        var service = new BackupService(db, Options.Create(new StorageOptions()), time, NullLogger<BackupService>.Instance);
        await service.StartAsync(CancellationToken.None);
        try
        {
            var start = time.GetUtcNow();
            Assert.That(await Eventually.ValueAsync(() => service.SleepingUntil, "the first sleep"), Is.EqualTo(start.AddMinutes(5)));
            Assert.That(DatabaseBackups.List(_dir.Path), Is.Empty, "nothing at the start");
            Assert.That(File.Exists(unfinished), Is.False, "an unfinished backup's copy is removed at the start");

            time.Advance(TimeSpan.FromMinutes(5));
            await Eventually.TrueAsync(() => service.SleepingUntil == start.AddMinutes(5).AddHours(24), "the backup, then a day's sleep");
            Assert.That(DatabaseBackups.List(_dir.Path).Select(b => b.TakenAt), Is.EqualTo(new[] { start.AddMinutes(5) }));
        }
        finally
        {
            await service.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public async Task Schedule_AfterARestart_ShouldWaitForTheNewestBackupToBeAPeriodOld()
    {
        var db = NewDatabase();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
        DatabaseBackups.Create(DbPath, time.GetUtcNow().AddHours(-2), keep: 7);
        var service = new BackupService(db, Options.Create(new StorageOptions()), time, NullLogger<BackupService>.Instance);
        await service.StartAsync(CancellationToken.None);
        try
        {
            Assert.That(await Eventually.ValueAsync(() => service.SleepingUntil, "the first sleep"), Is.EqualTo(time.GetUtcNow().AddHours(22)));
        }
        finally
        {
            await service.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public void AMigration_ShouldBeBackedUpFirst_AndOnlyWhenTheSchemaChanges()
    {
        var migrations = Migrator.Load();
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            foreach (var (version, _, sql) in migrations.Take(migrations.Count - 1))
                c.Execute(sql + $"\nPRAGMA user_version = {version};");
        }
        var previous = migrations.Count - 1;

        DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance);

        var backups = DatabaseBackups.List(_dir.Path);
        Assert.That(backups, Has.Count.EqualTo(1));
        Assert.That(Count(backups[0].Path, "PRAGMA user_version"), Is.EqualTo(previous), "the copy is of the schema before the migration");
        Assert.That(Count(DbPath, "PRAGMA user_version"), Is.EqualTo(migrations.Count));

        SqliteConnection.ClearAllPools();
        DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance);
        Assert.That(DatabaseBackups.List(_dir.Path), Has.Count.EqualTo(1), "no migration, no backup");
    }

    private Db Start() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance);

    /// <summary>A restore cut short after it moved the database aside: its checked copy (<paramref name="messages"/> messages) as lineagent.db.restoring.</summary>
    private void CutShortRestore(int messages, string? movedAside = "lineagent.db.replaced-20261207T020000Z")
    {
        NewDatabase(messages);
        SqliteConnection.ClearAllPools();
        File.Copy(DbPath, DbPath + ".restoring");
        if (movedAside is null)
            File.Delete(DbPath);
        else
            File.Move(DbPath, _dir.File(movedAside));
    }

    /// <summary>The marks a restore leaves in its copy: when it ran, and where the database it replaced went ("" for none).</summary>
    private void MarkRestoring(string aside)
    {
        using var c = new SqliteConnection($"Data Source={DbPath}.restoring;Pooling=False");
        c.Execute("INSERT INTO bridge_state (key, value) VALUES (@At, '1796608800000'), (@AsideKey, @Aside) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            new { At = DatabaseRestore.RestoredAtKey, AsideKey = DatabaseRestore.AsideKey, Aside = aside });
    }

    /// <summary>
    /// A restore cut short between moving the database aside and moving its checked copy in (black-box probe, a kill
    /// injected at that rename): the next start created a fresh, empty database. It finishes the restore instead.
    /// </summary>
    [Test]
    public void AStartAfterARestoreCutShort_ShouldFinishIt_NotStartEmpty()
    {
        CutShortRestore(messages: 7);

        // Unmarked, it is not a copy the restore had finished preparing (killed before MarkRestored, the database still in
        // place then and missing only later): refused as a missing database, never put in place (review).
        var e = Assert.Throws<DatabaseUnusableException>(() => Start())!;
        Assert.That(e.Message, Does.Contain("is missing, but a restore moved it aside"));
        Assert.That(File.Exists(DbPath + ".restoring"), Is.True);

        // Marked, but naming another file as the database it moved aside (an older .replaced-* is no proof): refused too (review).
        MarkRestoring("lineagent.db.replaced-20261207T030000Z");
        Assert.Throws<DatabaseUnusableException>(() => Start());

        MarkRestoring("lineagent.db.replaced-20261207T020000Z");
        Start();

        SqliteConnection.ClearAllPools();
        Assert.That(Count(DbPath, "SELECT COUNT(*) FROM messages"), Is.EqualTo(7), "the restored copy, not an empty database");
        Assert.That(File.Exists(DbPath + ".restoring"), Is.False);
        Assert.That(File.Exists(DbPath + ".replaced-20261207T020000Z"), Is.True, "the database it replaced is kept");
    }

    /// <summary>
    /// A restore into a data dir with no database (a new Mac) killed before its copy was moved in: nothing was moved aside and
    /// there are no backups, and the start made an empty database beside the marked copy (review). A stale copy next to a
    /// database still in place is removed instead.
    /// </summary>
    [Test]
    public void AStartAfterARestoreIntoAnEmptyDataDirCutShort_ShouldFinishIt_AndAStaleCopyShouldGo()
    {
        CutShortRestore(messages: 4, movedAside: null);
        MarkRestoring("");

        Start();
        SqliteConnection.ClearAllPools();
        Assert.That(Count(DbPath), Is.EqualTo(4));

        File.Copy(DbPath, DbPath + ".restoring");
        Start();
        Assert.That(File.Exists(DbPath + ".restoring"), Is.False, "a copy beside a database in place is stale");
    }

    [Test]
    public void AStartAfterARestoreCutShortWhileMovingTheWal_ShouldRefuse_AndAMovedAsideDatabaseAloneShouldNotStartEmpty()
    {
        CutShortRestore(messages: 3);
        File.WriteAllBytes(DbPath + "-wal", new byte[100]); // the replaced database's -wal, not moved yet

        var e = Assert.Throws<DatabaseUnusableException>(() => Start())!;
        Assert.That(e.Message, Does.Contain("a restore was cut short").And.Contain("lineagent.db-wal").And.Not.Contain('\n'));
        Assert.That(File.Exists(DbPath), Is.False, "nothing created");
        Assert.That(File.Exists(DbPath + ".restoring"), Is.True, "nothing moved");

        File.Delete(DbPath + "-wal");
        File.Delete(DbPath + ".restoring");
        e = Assert.Throws<DatabaseUnusableException>(() => Start())!;
        Assert.That(e.Message, Does.Contain("is missing, but a restore moved it aside as lineagent.db.replaced-20261207T020000Z"));
        Assert.That(File.Exists(DbPath), Is.False, "no empty database in its place");
    }

    /// <summary>
    /// A -wal damaged in the middle (a flipped sector): SQLite keeps the frames before the damage and drops every
    /// transaction after it; the agent started "storage ok" without them and its clean stop deleted the -wal (black-box
    /// probe: 20 of 40 answered messages gone). The start now refuses, in one line, and leaves the files as they are; an
    /// undamaged -wal left by a crash still starts with everything in it.
    /// </summary>
    [Test]
    public void ADamagedWal_ShouldBeRefusedBeforeSQLiteOpensIt_AndAWholeOneShouldStart()
    {
        NewDatabase(messages: 0);
        SqliteConnection.ClearAllPools();
        var crashed = _dir.File("crashed");
        Directory.CreateDirectory(crashed);
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            c.Execute("PRAGMA wal_autocheckpoint = 0");
            for (var i = 0; i < 40; i++)
                c.Execute("""
                    INSERT INTO messages (id, content, type, requested_type, status, line_id, recipient_phone, due_at, created_at, updated_at)
                    VALUES (@id, @content, 'sms', 'auto', 'scheduled', 'default', '+12025550123', 1, 1, 1)
                    """, new { id = $"msg_{i:D6}", content = new string('x', 2000) });
            // Copied while the connection is open: the database and its -wal as a kill -9 leaves them.
            File.Copy(DbPath, Path.Combine(crashed, "lineagent.db"));
            File.Copy(DbPath + "-wal", Path.Combine(crashed, "lineagent.db-wal"));
        }
        var whole = Path.Combine(_dir.File("whole"), "lineagent.db");
        Directory.CreateDirectory(Path.GetDirectoryName(whole)!);
        File.Copy(Path.Combine(crashed, "lineagent.db"), whole);
        File.Copy(Path.Combine(crashed, "lineagent.db-wal"), whole + "-wal");

        var damaged = Path.Combine(crashed, "lineagent.db");
        using (var wal = new FileStream(damaged + "-wal", FileMode.Open, FileAccess.ReadWrite))
        {
            wal.Position = wal.Length / 2;
            wal.Write([0xff, 0xff, 0xff, 0xff]);
        }
        var walBefore = File.ReadAllBytes(damaged + "-wal");

        // A bad frame in the last transaction only is what a kill between its commit frame and SQLite's rewrite of the
        // checksums of pages it overwrote in place leaves (review): SQLite's own recovery, no refusal.
        var lastOnly = Path.Combine(_dir.File("last"), "lineagent.db");
        Directory.CreateDirectory(Path.GetDirectoryName(lastOnly)!);
        File.Copy(whole, lastOnly);
        File.Copy(whole + "-wal", lastOnly + "-wal");
        using (var wal = new FileStream(lastOnly + "-wal", FileMode.Open, FileAccess.ReadWrite))
        {
            var frame = 24 + 4096L;
            wal.Position = wal.Length - frame - 100; // inside the page of the frame before the last
            wal.Write([0xff, 0xff, 0xff, 0xff]);
        }

        var e = Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(damaged, new StorageOptions(), TimeProvider.System, NullLogger.Instance))!;
        Assert.That(e.Message, Does.Contain("has a damaged -wal").And.Contain("would be lost").And.Contain("Nothing was changed").And.Not.Contain('\n'));
        Assert.That(File.ReadAllBytes(damaged + "-wal"), Is.EqualTo(walBefore), "the -wal is left as it was");

        DatabaseStartup.Open(whole, new StorageOptions(), TimeProvider.System, NullLogger.Instance);
        SqliteConnection.ClearAllPools();
        Assert.That(Count(whole), Is.EqualTo(40), "a -wal a crash left whole is replayed");
        DatabaseStartup.Open(lastOnly, new StorageOptions(), TimeProvider.System, NullLogger.Instance);
        SqliteConnection.ClearAllPools();
        Assert.That(Count(lastOnly), Is.InRange(38, 39), "the torn last transaction dropped, as SQLite does");
    }

    /// <summary>The -wal of 40 one-row transactions, as a kill -9 leaves it, and its frames' commit flags.</summary>
    private (string Wal, List<bool> Commits) CrashedWal()
    {
        NewDatabase(messages: 0);
        SqliteConnection.ClearAllPools();
        var wal = _dir.File("crashed.db-wal");
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            c.Execute("PRAGMA wal_autocheckpoint = 0");
            for (var i = 0; i < 40; i++)
                c.Execute("""
                    INSERT INTO messages (id, content, type, requested_type, status, line_id, recipient_phone, due_at, created_at, updated_at)
                    VALUES (@id, 'x', 'sms', 'auto', 'scheduled', 'default', '+12025550123', 1, 1, 1)
                    """, new { id = $"msg_{i:D6}" });
            File.Copy(DbPath + "-wal", wal);
        }
        var bytes = File.ReadAllBytes(wal);
        var commits = new List<bool>();
        for (long at = 32; at + Frame <= bytes.Length; at += Frame)
            commits.Add(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)at + 4)) != 0);
        return (wal, commits);
    }

    private const int Frame = 24 + 4096;

    private static void Damage(string wal, int frame)
    {
        using var stream = new FileStream(wal, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = 32 + (long)frame * Frame + 24 + 1000; // inside its page
        stream.Write([0xde, 0xad, 0xbe, 0xef]);
    }

    /// <summary>Damage to the commit frame of the last transaction but one loses two answered transactions (review: not counted).</summary>
    [Test]
    public void ADamagedCommitFrameBeforeTheLastTransaction_ShouldBeFound()
    {
        var (wal, commits) = CrashedWal();
        var commitFrames = commits.Select((c, i) => (c, i)).Where(x => x.c).Select(x => x.i).ToList();
        Damage(wal, commitFrames[^2]);
        Assert.That(WalFile.Damage(wal), Does.Contain("at least 1 committed transaction"));
    }

    /// <summary>A zeroed 4 KB block spans two frames: the count stopped at the frame after the first bad one and missed it (review).</summary>
    [TestCase(40960)]
    [TestCase(20480 + 4000)]
    public void AZeroedBlockAcrossTwoFrames_ShouldBeFound(int at)
    {
        var (wal, _) = CrashedWal();
        using (var stream = new FileStream(wal, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = at;
            stream.Write(new byte[4096]);
        }
        Assert.That(WalFile.Damage(wal), Does.Contain("committed transaction"));
    }

    /// <summary>
    /// Two kills, each between a commit frame and SQLite's rewrite of the checksums of pages it overwrote in place, in one
    /// WAL generation: the first one's frames stay beyond the second one's end. Counting every commit frame of the
    /// generation after the bad frame refused every start from then on (review); only frames that chain on count.
    /// </summary>
    [Test]
    public void ALeftoverOfAnEarlierCrashBeyondATornLastTransaction_ShouldNotBeTakenForDamage()
    {
        var (wal, commits) = CrashedWal();
        var last = commits.LastIndexOf(true);
        var start = commits.LastIndexOf(true, last - 1) + 1; // the last transaction's first frame
        Assert.That(last - start, Is.GreaterThan(0), "the last transaction has a frame before its commit frame");
        var bytes = File.ReadAllBytes(wal).ToList();
        // The last transaction's frames once more after it: same salts, but their checksums chain from where they were written.
        bytes.AddRange(File.ReadAllBytes(wal).Skip(32 + start * Frame).Take((last - start + 1) * Frame));
        File.WriteAllBytes(wal, bytes.ToArray());
        Damage(wal, start); // torn in the last transaction: SQLite drops it, and the start goes on

        Assert.That(WalFile.Damage(wal), Is.Null);
    }

    /// <summary>The schema <paramref name="behind"/> migrations before the latest.</summary>
    private void OldSchemaDatabase(int behind = 1)
    {
        var migrations = Migrator.Load();
        using var c = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        c.Open();
        c.Execute("PRAGMA journal_mode=WAL;"); // as the agent's database always is
        foreach (var (version, _, sql) in migrations.Take(migrations.Count - behind))
            c.Execute(sql + $"\nPRAGMA user_version = {version};");
    }

    [Test]
    public void AMigrationWhoseBackupFails_ShouldNotRun()
    {
        OldSchemaDatabase();
        File.WriteAllText(_dir.File("backups"), "a file where the backups folder goes"); // Directory.CreateDirectory fails (also as root)
        var before = File.ReadAllBytes(DbPath);

        var e = Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance))!;

        Assert.That(e.Message, Does.Contain("was not migrated").And.Contain("the backup before the migration failed").And.Not.Contain('\n'));
        SqliteConnection.ClearAllPools();
        Assert.That(Count(DbPath, "PRAGMA user_version"), Is.EqualTo(Migrator.Load().Count - 1), "still the old schema");
        Assert.That(File.ReadAllBytes(DbPath), Is.EqualTo(before));
    }

    [Test]
    public void StartsThatFailAfterTheBackup_ShouldNotRotateTheOlderBackupsOut()
    {
        // launchd restarts a failing agent every 10 s; each start used to back up again and prune, so within
        // Storage:BackupsKept restarts every older copy was gone.
        OldSchemaDatabase(behind: Migrator.Load().Count - 9);
        var older = Enumerable.Range(1, 3).Select(d => DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow.AddDays(-d), keep: 3)).ToList();
        // A migration that fails every time: a table in the way of migration 010's index.
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            c.Execute("CREATE TABLE ix_suppressions_created (x)");
        }
        var options = new StorageOptions { BackupsKept = 3 };

        for (var start = 0; start < 4; start++)
        {
            Assert.Catch(() => DatabaseStartup.Open(DbPath, options, TimeProvider.System, NullLogger.Instance), $"start {start}");
            SqliteConnection.ClearAllPools(); // as the process exits
        }

        var kept = DatabaseBackups.List(_dir.Path).Select(b => b.Name).ToList();
        Assert.That(kept, Has.Count.EqualTo(3));
        Assert.That(kept, Does.Contain(older[0].Name).And.Contain(older[1].Name), "one pre-migration copy, not one per start");

        // Once the database changes, the next migration attempt makes a fresh copy.
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            c.Execute("DROP TABLE ix_suppressions_created");
        }
        DatabaseStartup.Open(DbPath, options, TimeProvider.System, NullLogger.Instance);
        Assert.That(DatabaseBackups.List(_dir.Path).Select(b => b.Name), Does.Not.Contain(older[1].Name), "a new copy, pruned to 3");
        Assert.That(File.Exists(DbPath + ".premigration"), Is.False);
    }

    [Test]
    public void AMissingDatabaseWithBackups_ShouldBeRefused_NotStartedEmpty()
    {
        // Moved, evicted by a sync service, or a restore cut short between its two renames: a fresh database would forget
        // every scheduled message and Idempotency-Key, and the daily backups would rotate the good copies out.
        NewDatabase(messages: 3);
        DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow.AddHours(-1), keep: 7);
        SqliteConnection.ClearAllPools();
        DatabaseFile.DeleteWithCompanions(DbPath);

        var e = Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance))!;

        Assert.That(e.Message, Does.Contain("is missing, but this data directory has 1 backup(s)").And.Contain("lineagent restore").And.Not.Contain('\n'));
        Assert.That(e.ExitCode, Is.EqualTo(DatabaseUnusableException.ExitCodeConfig));
        Assert.That(File.Exists(DbPath), Is.False, "no empty database was made");
    }

    [Test]
    public void ARefusedDatabase_ShouldBeRefusedAgainWithoutReadingIt_UntilTheFileChanges()
    {
        // launchd restarts a refused agent every 10 s; each start ran quick_check over the whole file again.
        NewDatabase();
        SqliteConnection.ClearAllPools();
        Checkpoint(DbPath);
        Overwrite(DbPath, 0, 100);
        Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance));
        var memo = DbPath + ".refused";
        Assert.That(File.Exists(memo), Is.True);

        // What the memo says is what the next start answers: the file is not read again.
        var lines = File.ReadAllLines(memo);
        lines[^1] = "is damaged (remembered)";
        File.WriteAllLines(memo, lines);
        var again = Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance))!;
        Assert.That(again.Message, Does.Contain("is damaged (remembered)"));

        // A changed file is checked again.
        File.SetLastWriteTimeUtc(DbPath, DateTime.UtcNow.AddMinutes(1));
        var checkedAgain = Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance))!;
        Assert.That(checkedAgain.Message, Does.Not.Contain("remembered").And.Contain("SQLite header"));
    }

    [Test]
    public void Startup_ShouldThrowTheTypedException_WithOneLine()
    {
        NewDatabase();
        SqliteConnection.ClearAllPools();
        Checkpoint(DbPath);
        Overwrite(DbPath, 0, 100);

        var e = Assert.Throws<DatabaseUnusableException>(() => DatabaseStartup.Open(DbPath, new StorageOptions(), TimeProvider.System, NullLogger.Instance))!;

        Assert.That(e.Message, Does.StartWith($"lineagent: {DbPath} is damaged").And.Not.Contain('\n'));
        Assert.That(DatabaseUnusableException.Find(new InvalidOperationException("host", new AggregateException(e))), Is.SameAs(e));
    }

    [Test]
    public void ShellQuote_ShouldQuoteTheMacDataDir()
    {
        Assert.That(DatabaseFile.ShellQuote("/Users/ana/Library/Application Support/LineAgent"), Is.EqualTo("'/Users/ana/Library/Application Support/LineAgent'"));
        Assert.That(DatabaseFile.ShellQuote("/tmp/x"), Is.EqualTo("/tmp/x"));
    }

    [Test]
    public void Restore_ShouldSkipADamagedNewestBackup_AndUseTheNewestGoodOne()
    {
        NewDatabase(messages: 7);
        var good = DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow.AddHours(-2), keep: 7);
        var bad = DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow.AddHours(-1), keep: 7);
        Overwrite(bad.Path, 0, 200);
        SqliteConnection.ClearAllPools();
        Truncate(DbPath, 0);
        var output = new StringWriter();
        var errors = new StringWriter();

        var code = new DatabaseRestore(_dir.Path, output, errors, TimeProvider.System).Run(from: null);

        Assert.That(code, Is.Zero, errors.ToString());
        Assert.That(output.ToString(), Does.Contain($"Not using {bad.Path}: it is damaged").And.Contain($"Restored {good.Path}").And.Contain("7 messages"));
        Assert.That(Count(DbPath), Is.EqualTo(7));
        Assert.That(File.Exists(bad.Path), Is.True, "a damaged backup is reported, not deleted");
        Assert.That(Directory.GetFiles(_dir.Path, "lineagent.db.damaged-*").Select(f => new FileInfo(f).Length), Is.EqualTo(new[] { 0L }));
    }

    [Test]
    public async Task Restore_ShouldWaitForAnAgentThatIsStillStopping()
    {
        // A stopped agent writes what it owed (the search index) and then releases agent.lock; a restore right after
        // the stop used to be refused at once ("An agent is running").
        NewDatabase(messages: 3);
        var backup = DatabaseBackups.Create(DbPath, DateTimeOffset.UtcNow.AddHours(-1), keep: 7);
        SqliteConnection.ClearAllPools();
        var stopping = new FileStream(Path.Combine(_dir.Path, "agent.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        var output = new StringWriter();
        var errors = new StringWriter();
        var restore = Task.Run(() => new DatabaseRestore(_dir.Path, output, errors, TimeProvider.System).Run(from: null));
        // The agent's last moments. Not a sleep to make the test pass: were the restore not started yet, this would
        // only prove less; a restore that refuses at once has completed by then.
        await Task.Delay(300);
        Assert.That(restore.IsCompleted, Is.False, errors.ToString());
        stopping.Dispose();
        Assert.That(await restore, Is.Zero, errors.ToString());
        Assert.That(output.ToString(), Does.Contain($"Restored {backup.Path}"));
        // The database it replaced passed the checks: it is kept as "replaced", not called damaged.
        Assert.That(Directory.GetFiles(_dir.Path, "lineagent.db.replaced-*").Select(Path.GetFileName), Has.Exactly(1).Matches<string>(f => !f.EndsWith("-wal") && !f.EndsWith("-shm")));
        Assert.That(Directory.GetFiles(_dir.Path, "lineagent.db.damaged-*"), Is.Empty);
    }

    [Test]
    public void BackupsDatedInTheFuture_ShouldBePrunedFirst_NeverTheOneJustMade_AndRestoredLast()
    {
        // Taken while the Mac's clock was set ten years ahead; the clock is right again now.
        NewDatabase(messages: 4);
        var now = DateTimeOffset.UtcNow;
        var stale = DatabaseBackups.Create(DbPath, now.AddYears(10), keep: 2);
        var staler = DatabaseBackups.Create(DbPath, now.AddYears(10).AddHours(1), keep: 2);

        var made = DatabaseBackups.Create(DbPath, now, keep: 2);
        Assert.That(File.Exists(made.Path), Is.True, "the backup just made is kept (it was pruned as the oldest)");
        Assert.That(DatabaseBackups.List(_dir.Path, now).Select(b => (b.Path, b.FutureDated)),
            Is.EqualTo(new[] { (made.Path, false), (staler.Path, true) }), "the real one first; a future-dated one pruned");
        Assert.That(DatabaseBackups.Describe(_dir.Path, now), Does.StartWith($"newest backup {made.Name}"));

        var listed = new StringWriter();
        new DatabaseRestore(_dir.Path, listed, new StringWriter(), TimeProvider.System).List();
        Assert.That(listed.ToString(), Does.Contain($"{staler.Name}  {staler.TakenAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC  dated in the future"));
        SqliteConnection.ClearAllPools();
        Truncate(DbPath, 0);
        var output = new StringWriter();
        var errors = new StringWriter();
        Assert.That(new DatabaseRestore(_dir.Path, output, errors, TimeProvider.System).Run(from: null), Is.Zero, errors.ToString());
        Assert.That(output.ToString(), Does.Contain($"Restored {made.Path}"), "the newest real backup, not the future-dated one");

        var next = DatabaseBackups.Create(DbPath, now.AddHours(1), keep: 2);
        Assert.That(DatabaseBackups.List(_dir.Path, now.AddHours(1)).Select(b => b.Path), Is.EqualTo(new[] { next.Path, made.Path }));
        Assert.That(File.Exists(stale.Path) || File.Exists(staler.Path), Is.False);
    }

    [Test]
    public void TheRestoreListing_ShouldMarkABackupThatIsCutShort_OrNotADatabase()
    {
        NewDatabase(messages: 3);
        SqliteConnection.ClearAllPools();
        var now = DateTimeOffset.UtcNow;
        var good = DatabaseBackups.Create(DbPath, now.AddHours(-3), keep: 5);
        var cut = DatabaseBackups.Create(DbPath, now.AddHours(-2), keep: 5);
        var overwritten = DatabaseBackups.Create(DbPath, now.AddHours(-1), keep: 5);
        Truncate(cut.Path, new FileInfo(cut.Path).Length / 2);
        File.WriteAllBytes(overwritten.Path, new byte[8192]);

        var listed = new StringWriter();
        Assert.That(new DatabaseRestore(_dir.Path, listed, new StringWriter(), TimeProvider.System).List(), Is.Zero);

        var lines = listed.ToString().Split('\n').Where(l => l.StartsWith("  lineagent-", StringComparison.Ordinal)).ToList();
        Assert.That(lines, Has.Count.EqualTo(3), listed.ToString());
        Assert.That(lines.Single(l => l.Contains(cut.Name)), Does.Contain("DAMAGED: it is cut short (").And.Contain("; --yes skips it"));
        Assert.That(lines.Single(l => l.Contains(overwritten.Name)), Does.Contain("DAMAGED: it does not start with the SQLite header"));
        Assert.That(lines.Single(l => l.Contains(good.Name)), Does.Not.Contain("DAMAGED"));
        Assert.That(listed.ToString(), Does.Contain("a restore also runs quick_check"));
    }

    [Test]
    public void Restore_FromADamagedFile_ShouldChangeNothing()
    {
        NewDatabase(messages: 3);
        SqliteConnection.ClearAllPools();
        var bad = _dir.File("copy.db");
        File.WriteAllBytes(bad, new byte[8192]);
        var before = File.ReadAllBytes(DbPath);
        var errors = new StringWriter();

        var code = new DatabaseRestore(_dir.Path, new StringWriter(), errors, TimeProvider.System).Run(from: bad);

        Assert.That(code, Is.Not.Zero);
        Assert.That(errors.ToString(), Does.Contain("is not a good copy. Nothing was changed."));
        Assert.That(File.ReadAllBytes(DbPath), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_dir.Path, "lineagent.db*").Select(Path.GetFileName), Is.EqualTo(new[] { "lineagent.db" }), "nothing moved aside, no staged copy left");
    }

    [Test]
    public void Restore_FromACopyWithItsWal_ShouldKeepWhatOnlyTheWalHeld()
    {
        NewDatabase(messages: 2);
        SqliteConnection.ClearAllPools();
        var copy = _dir.File("copy.db");
        using (var c = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            c.Open();
            c.Execute("PRAGMA wal_autocheckpoint=0;");
            c.Execute("UPDATE messages SET content = 'only in the wal'");
            File.Copy(DbPath, copy);
            File.Copy(DbPath + "-wal", copy + "-wal");
        }
        Assert.That(new FileInfo(copy + "-wal").Length, Is.GreaterThan(0));
        Truncate(DbPath, 0);
        var output = new StringWriter();

        var code = new DatabaseRestore(_dir.Path, output, output, TimeProvider.System).Run(from: copy);

        Assert.That(code, Is.Zero, output.ToString());
        Assert.That(Count(DbPath, "SELECT COUNT(*) FROM messages WHERE content = 'only in the wal'"), Is.EqualTo(2));
        Assert.That(File.Exists(copy + "-wal"), Is.True, "the source is left as it was");
        Assert.That(Directory.GetFiles(_dir.Path, "lineagent.db.restoring*"), Is.Empty);
    }

    private sealed class ListLogger<T> : ILogger<T>
    {
        private readonly ConcurrentQueue<string> _errors = new();
        public List<string> Errors => _errors.ToList();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error)
                _errors.Enqueue(formatter(state, exception));
        }
    }
}
