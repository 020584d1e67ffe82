using LineAgent.Scheduling;
using Microsoft.Extensions.Options;

namespace LineAgent.Storage;

/// <summary>
/// Backs lineagent.db up every Storage:BackupEvery (never at the start: first after Storage:FirstBackupAfter, and not
/// before the newest backup is BackupEvery old, so frequent restarts do not rotate the good copies out). A backup that
/// fails is logged and tried again within the hour; it never stops the agent.
/// </summary>
public sealed class BackupService(Db db, IOptions<StorageOptions> options, TimeProvider time, ILogger<BackupService> log)
    : WorkerLoop(time, log)
{
    private DateTimeOffset? _due;

    /// <summary>When the next backup is due (null before the first pass).</summary>
    public DateTimeOffset? Due => _due;

    protected override Task<bool> StartingAsync(CancellationToken ct)
    {
        // A backup cut short by a kill or a crash leaves its temporary copy, as large as the database: removed now (this agent
        // holds the data dir's lock, and its own backups start later), not only at the next backup, minutes or hours away.
        try
        {
            DatabaseBackups.RemoveUnfinished(Path.GetDirectoryName(db.Path)!);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogWarning("Could not look for unfinished backups to remove: {Reason}", e.Message);
        }
        return Task.FromResult(options.Value.BackupEvery > TimeSpan.Zero);
    }

    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = Clock.GetUtcNow();
        _due ??= FirstDue(now, o);
        if (now < _due)
            return _due.Value;
        var made = await Task.Factory.StartNew(() => BackupNow(ct), ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _due = Clock.GetUtcNow() + (made is null ? Min(o.BackupEvery, TimeSpan.FromHours(1)) : o.BackupEvery);
        return _due.Value;
    }

    private DateTimeOffset FirstDue(DateTimeOffset now, StorageOptions o)
    {
        var due = now + o.FirstBackupAfter;
        if (DatabaseBackups.List(Path.GetDirectoryName(db.Path)!, now).FirstOrDefault() is { } newest)
        {
            var fromNewest = Min(newest.TakenAt + o.BackupEvery, now + o.BackupEvery); // a backup dated in the future (clock change) waits one period
            if (fromNewest > due)
                due = fromNewest;
        }
        log.LogInformation("Next backup of the database at {Due:O} (every {Every}, {Kept} kept)", due, o.BackupEvery, o.BackupsKept);
        return due;
    }

    /// <summary>One backup now; null when it failed (logged).</summary>
    public BackupFile? BackupNow(CancellationToken ct = default)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var backup = DatabaseBackups.Create(db.Path, Clock.GetUtcNow(), options.Value.BackupsKept, ct);
            log.LogInformation("Backed up the database to {Backup} ({Kb} KB, {Ms:0} ms, quick_check ok); the newest {Kept} are kept",
                backup.Path, backup.Bytes / 1024, started.Elapsed.TotalMilliseconds, options.Value.BackupsKept);
            return backup;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e)
        {
            log.LogError(e, "Backing up the database {Path} failed; the agent goes on, older backups are kept", db.Path);
            return null;
        }
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
