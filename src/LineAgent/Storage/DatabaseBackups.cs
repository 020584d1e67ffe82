using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>One copy in &lt;data dir&gt;/backups, named lineagent-&lt;UTC time&gt;.db.</summary>
public sealed record BackupFile(string Path, DateTimeOffset TakenAt, long Bytes)
{
    public string Name => System.IO.Path.GetFileName(Path);

    /// <summary>
    /// Named more than <see cref="DatabaseBackups.FutureSlack"/> after the time it was listed at: taken while the clock was
    /// wrong, so its name says nothing about its age. Listed after every other backup, pruned first, restored last.
    /// </summary>
    public bool FutureDated { get; init; }
}

/// <summary>
/// The automatic copies of lineagent.db: made with VACUUM INTO (a consistent snapshot, read while the agent keeps
/// writing) into a hidden temporary name in &lt;data dir&gt;/backups, flushed, checked with quick_check, then renamed to
/// lineagent-&lt;UTC time&gt;.db (0600); only then are the oldest beyond the number kept deleted. A half-written copy
/// never has a backup's name.
/// </summary>
public static partial class DatabaseBackups
{
    public const string FolderName = "backups";
    private const string StampFormat = "yyyyMMdd'T'HHmmss'.'fff'Z'";

    [GeneratedRegex(@"^lineagent-(\d{8}T\d{6}\.\d{3}Z)\.db$")]
    private static partial Regex BackupName();

    public static string FolderOf(string dataDir) => Path.Combine(dataDir, FolderName);

    public static string NameFor(DateTimeOffset at) =>
        "lineagent-" + at.UtcDateTime.ToString(StampFormat, CultureInfo.InvariantCulture) + ".db";

    /// <summary>How far after now a backup's name may be dated before it counts as taken while the clock was wrong.</summary>
    public static readonly TimeSpan FutureSlack = TimeSpan.FromHours(1);

    /// <summary>
    /// The backups in &lt;data dir&gt;/backups, newest first (temporary files are not backups). Given <paramref name="now"/>,
    /// those dated after it (see <see cref="BackupFile.FutureDated"/>) come last: a clock once set years ahead would
    /// otherwise keep its copies "newest" for good, and each new backup would be pruned as the oldest right after it was
    /// made, and restore would pick the stale copy first.
    /// </summary>
    public static IReadOnlyList<BackupFile> List(string dataDir, DateTimeOffset? now = null)
    {
        var folder = FolderOf(dataDir);
        if (!Directory.Exists(folder))
            return [];
        var list = new List<BackupFile>();
        foreach (var file in new DirectoryInfo(folder).EnumerateFiles("lineagent-*.db"))
        {
            if (BackupName().Match(file.Name) is not { Success: true } m)
                continue;
            var at = DateTimeOffset.ParseExact(m.Groups[1].Value, StampFormat, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
            long length;
            try
            {
                length = file.Length; // read from the file now, not from the listing
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                continue; // pruned since it was listed (a running agent's backup service, while `restore --list` reads the folder)
            }
            list.Add(new BackupFile(file.FullName, at, length) { FutureDated = now is { } n && at > n + FutureSlack });
        }
        return list.OrderBy(b => b.FutureDated).ThenByDescending(b => b.TakenAt).ThenByDescending(b => b.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Copies the database at <paramref name="databasePath"/> into its data dir's backups folder, checks the copy, then
    /// keeps the newest <paramref name="keep"/> backups. Throws when no good copy was made (nothing is pruned then).
    /// </summary>
    public static BackupFile Create(string databasePath, DateTimeOffset now, int keep, CancellationToken ct = default)
    {
        var dataDir = Path.GetDirectoryName(Path.GetFullPath(databasePath))!;
        var folder = FolderOf(dataDir);
        Directory.CreateDirectory(folder);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        RemoveLeftovers(folder);

        var at = now;
        while (File.Exists(Path.Combine(folder, NameFor(at))))
            at = at.AddMilliseconds(1);
        var final = Path.Combine(folder, NameFor(at));
        var temp = Path.Combine(folder, "." + NameFor(at) + ".tmp");
        try
        {
            // VACUUM INTO accepts an existing empty file and keeps its mode: the copy is 0600 from its first byte.
            using (DatabaseFile.CreateOwnerOnly(temp)) { }
            using (var source = new SqliteConnection(new SqliteConnectionStringBuilder
                   {
                       DataSource = databasePath,
                       Mode = SqliteOpenMode.ReadWrite,
                       Pooling = false,
                       DefaultTimeout = 30,
                   }.ToString()))
            {
                source.Open();
                using var stop = ct.Register(() => SQLitePCL.raw.sqlite3_interrupt(source.Handle));
                using var cmd = source.CreateCommand();
                cmd.CommandTimeout = 0;
                cmd.CommandText = "VACUUM INTO $target;";
                cmd.Parameters.AddWithValue("$target", temp);
                try
                {
                    cmd.ExecuteNonQuery();
                }
                catch (SqliteException) when (ct.IsCancellationRequested)
                {
                    throw new OperationCanceledException(ct);
                }
            }
            DatabaseFile.FlushToDisk(temp);
            var check = DatabaseFile.Inspect(temp);
            if (!check.Ok)
                throw new InvalidDataException($"The new backup {temp} {check.Problem}; it was deleted and no older backup was removed.");
            File.Move(temp, final);
        }
        finally
        {
            DatabaseFile.DeleteWithCompanions(temp);
        }
        Prune(dataDir, keep, now, made: final);
        return new BackupFile(final, at, new FileInfo(final).Length);
    }

    /// <summary>
    /// Deletes all but the newest <paramref name="keep"/> backups (see <see cref="List"/> for the order); the one just
    /// <paramref name="made"/> is never deleted. Returns the deleted ones.
    /// </summary>
    public static IReadOnlyList<BackupFile> Prune(string dataDir, int keep, DateTimeOffset? now = null, string? made = null)
    {
        var old = List(dataDir, now).OrderBy(b => b.Path != made).Skip(Math.Max(1, keep)).ToList();
        foreach (var backup in old)
            DatabaseFile.DeleteWithCompanions(backup.Path);
        return old;
    }

    /// <summary>Removes the temporary copies of backups that never finished in <paramref name="dataDir"/>'s backups folder.</summary>
    public static void RemoveUnfinished(string dataDir)
    {
        var folder = FolderOf(dataDir);
        if (Directory.Exists(folder))
            RemoveLeftovers(folder);
    }

    /// <summary>Temporary copies of a backup that never finished (the agent stopped or crashed during one).</summary>
    private static void RemoveLeftovers(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder, ".lineagent-*.tmp*"))
        {
            try { File.Delete(file); }
            catch (IOException) { }
        }
    }

    /// <summary>"newest backup lineagent-….db, 3 h old (7 in backups/)" for doctor and the logs.</summary>
    public static string Describe(string dataDir, DateTimeOffset now)
    {
        var list = List(dataDir, now);
        if (list.Count == 0)
            return $"no backup yet in {FolderOf(dataDir)} (a running agent makes one some minutes after it starts, then every Storage:BackupEvery)";
        var newest = list[0];
        return newest.FutureDated
            ? $"every backup is dated in the future (taken while the clock was wrong), the first {newest.Name} ({list.Count} in {FolderOf(dataDir)})"
            : $"newest backup {newest.Name}, {Age(now - newest.TakenAt)} old ({list.Count} in {FolderOf(dataDir)})";
    }

    public static string Age(TimeSpan age)
    {
        if (age < TimeSpan.Zero) age = TimeSpan.Zero;
        return age.TotalMinutes < 1 ? $"{(int)age.TotalSeconds} s"
            : age.TotalHours < 1 ? $"{(int)age.TotalMinutes} min"
            : age.TotalDays < 2 ? $"{(int)age.TotalHours} h {age.Minutes} min"
            : $"{(int)age.TotalDays} days";
    }
}
