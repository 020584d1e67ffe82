namespace LineAgent.Storage;

/// <summary>`Storage:*`: the automatic copies of lineagent.db in &lt;data dir&gt;/backups.</summary>
public sealed class StorageOptions
{
    public const string Section = "Storage";

    /// <summary>How often a running agent copies the database (VACUUM INTO); 00:00:00 = no scheduled backups.</summary>
    public TimeSpan BackupEvery { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// The first scheduled backup of a run is made this long after the start (never at the start: a crash loop must not
    /// rotate the good copies out), and not before the newest existing backup is BackupEvery old.
    /// </summary>
    public TimeSpan FirstBackupAfter { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How many backups are kept (the newest ones); older ones are deleted once a new one passed quick_check.</summary>
    public int BackupsKept { get; set; } = 7;

    public IEnumerable<string> Problems()
    {
        if (BackupEvery < TimeSpan.Zero) yield return "Storage:BackupEvery must not be negative (00:00:00 turns scheduled backups off).";
        if (FirstBackupAfter < TimeSpan.Zero) yield return "Storage:FirstBackupAfter must not be negative.";
        if (BackupsKept < 1) yield return "Storage:BackupsKept must be at least 1.";
    }
}
