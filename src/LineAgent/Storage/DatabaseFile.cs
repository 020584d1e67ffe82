using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

public enum DatabaseState
{
    Ok,
    Missing,
    /// <summary>0 bytes: SQLite would take it for a new database, but an agent's database never is.</summary>
    Empty,
    Damaged,
    /// <summary>SQLite cannot open or read it (permissions, I/O): not proof of damage.</summary>
    Unreadable,
    /// <summary>SQLite cannot open it and the disk holding it has no room (for its -wal and -shm): nothing wrong with the file.</summary>
    DiskFull,
    /// <summary>Its schema version is higher than this agent's migrations.</summary>
    Newer,
}

/// <summary>What <see cref="DatabaseFile.Inspect"/> found; <see cref="Problem"/> reads after the path ("… is damaged (…)").</summary>
public sealed record DatabaseInspection(string Path, DatabaseState State, string? Problem, int Version, long Bytes, TimeSpan Elapsed)
{
    public bool Ok => State == DatabaseState.Ok;
}

/// <summary>Checks of a database file (header, size, quick_check, schema version) and its file modes.</summary>
public static class DatabaseFile
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The files SQLite keeps next to a database while it is in use.</summary>
    public static readonly string[] Companions = ["-wal", "-shm", "-journal"];

    private static ReadOnlySpan<byte> Header => "SQLite format 3\0"u8;

    /// <summary>
    /// Looks at <paramref name="path"/>: missing, 0 bytes, shorter than a header, without the SQLite header, failing
    /// PRAGMA quick_check (or SQLite calling it malformed), or of a newer schema. A WAL database is read with its -wal,
    /// as the agent would. Read-only (the default) never changes the file, not even by a checkpoint on close;
    /// <paramref name="readOnly"/> false folds a -wal into the file when the check closes it (for a staged copy).
    /// </summary>
    public static DatabaseInspection Inspect(string path, bool readOnly = true)
    {
        var clock = Stopwatch.StartNew();
        var info = Target(path);
        DatabaseInspection Result(DatabaseState state, string? problem, int version = 0) =>
            new(path, state, problem, version, info.Exists ? info.Length : 0, clock.Elapsed);

        if (!info.Exists)
            return Result(DatabaseState.Missing, info.FullName == Path.GetFullPath(path) ? "does not exist"
                : $"is a link to {info.FullName}, which does not exist (a volume that is not mounted?)");
        if (info.Length == 0)
            return Result(DatabaseState.Empty, "is empty (0 bytes): the data it held is gone");
        if (info.Length < 100)
            return Result(DatabaseState.Damaged, $"is damaged: it is only {info.Length} bytes long, shorter than a database header (100 bytes)");

        var head = new byte[100];
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.ReadExactly(head);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Result(DatabaseState.Unreadable, $"cannot be read ({OneLine(e.Message)})");
        }
        if (!head.AsSpan(0, Header.Length).SequenceEqual(Header))
            return Result(DatabaseState.Damaged, "is damaged: it does not start with the SQLite header (it was overwritten, or is not a database)");
        var cutShort = CutShort(path, head, info.Length);

        var known = Migrator.Load().Count;
        int version;
        List<string> findings = [];
        try
        {
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = path,
                Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWrite,
                Pooling = false,
            }.ToString());
            connection.Open();
            using (var cmd = connection.CreateCommand())
            {
                cmd.CommandText = "PRAGMA quick_check(5);";
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                    findings.Add(reader.GetString(0));
            }
            version = Migrator.UserVersion(connection);
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 11 or 26) // SQLITE_CORRUPT, SQLITE_NOTADB
        {
            return Result(DatabaseState.Damaged, $"is damaged (quick_check: {SqliteMessage(e)}{cutShort})");
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 10 or 13 or 14 && NoRoom(path) is { } free)
        {
            // SQLite creates the -wal and -shm it needs on open, and reports ENOSPC as an I/O error (10): a start on a full disk
            // was told to check the file and restore a backup (black-box probe), which would throw away everything since it.
            // Only when a small file cannot be written there either, for want of room (not a busy lock, a refused permission, a
            // read-only volume whose free space also reads 0, or a failing disk: review).
            return Result(DatabaseState.DiskFull, string.Create(CultureInfo.InvariantCulture,
                $"cannot be opened: the disk holding it is full ({free / 1024} KB free), so SQLite could not make room for its -wal and -shm files; the file was not checked (SQLite error {e.SqliteErrorCode}: {SqliteMessage(e)})"));
        }
        catch (SqliteException e)
        {
            return Result(DatabaseState.Unreadable, $"cannot be opened (SQLite error {e.SqliteErrorCode}: {SqliteMessage(e)})");
        }
        if (findings is not ["ok"])
            return Result(DatabaseState.Damaged, $"is damaged (quick_check: {Shorten(string.Join("; ", findings.Select(OneLine)))}{cutShort})");
        if (version > known)
            return Result(DatabaseState.Newer, $"has schema version {version}, newer than this agent knows ({known}): a newer LineAgent wrote it", version);
        return Result(DatabaseState.Ok, null, version);
    }

    /// <summary>
    /// What can be told of <paramref name="path"/> without opening it in SQLite (instant, whatever its size): empty, shorter
    /// than a header, without the SQLite header, or shorter than its header says (cut short). Null when none of those: it may
    /// still fail quick_check. For listings, where running quick_check on every backup would take seconds per gigabyte.
    /// </summary>
    public static string? FirstLook(string path)
    {
        var info = Target(path);
        if (!info.Exists)
            return "does not exist";
        if (info.Length < 100)
            return info.Length == 0 ? "is empty (0 bytes)" : $"is only {info.Length} bytes long, shorter than a database header";
        var head = new byte[100];
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.ReadExactly(head);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot be read ({OneLine(e.Message)})";
        }
        if (!head.AsSpan(0, Header.Length).SequenceEqual(Header))
            return "does not start with the SQLite header";
        return CutShort(path, head, info.Length).Length > 0
            ? string.Create(CultureInfo.InvariantCulture, $"is cut short ({info.Length} bytes where its header says {HeaderLength(head)})")
            : null;
    }

    /// <summary>
    /// The file <paramref name="path"/> names: a symlink's final target, whose size and times are the database's (the
    /// link's own are its text: a linked database was called damaged, "only 24 bytes long", probe).
    /// </summary>
    internal static FileInfo Target(string path)
    {
        var info = new FileInfo(path);
        try
        {
            return info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target ? target : info;
        }
        catch (IOException)
        {
            return info; // a loop of links: SQLite's open says what it is
        }
    }

    /// <summary>Below this much free space on its disk, a database SQLite cannot open is taken as a full disk, not a bad file.</summary>
    public const long FullBelow = 1024 * 1024;

    /// <summary>The free space of the disk holding <paramref name="path"/> when it is under <see cref="FullBelow"/> and a 64 KB file cannot be written next to it for want of room; else null.</summary>
    internal static long? NoRoom(string path)
    {
        if (FreeBytes(path) is not { } free || free >= FullBelow)
            return null;
        var probe = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".lineagent-room-{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None))
            {
                stream.Write(new byte[64 * 1024]);
                stream.Flush(flushToDisk: true);
            }
            return null; // there was room after all
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return StorageHealth.FaultOf(e) == StorageState.Full ? free : null;
        }
        finally
        {
            try { File.Delete(probe); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    /// <summary>The free space of the disk holding <paramref name="path"/> (statvfs); null when it cannot be asked.</summary>
    public static long? FreeBytes(string path)
    {
        try
        {
            return new DriveInfo(Path.GetDirectoryName(Path.GetFullPath(path))!).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>
    /// ", the file is N bytes but its header says M" when the header's page count is valid and the file is shorter (and no
    /// -wal holds the rest): the usual sign of a file cut short by a copy or a full disk.
    /// </summary>
    /// <summary>The length the header says the file has (page size × pages), when its page count is valid (the change counter matches the version-valid-for number).</summary>
    private static long? HeaderLength(byte[] head)
    {
        var pageSize = (long)BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(16));
        if (pageSize == 1) pageSize = 65536;
        var pages = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(28));
        return head.AsSpan(24, 4).SequenceEqual(head.AsSpan(92, 4)) && pages > 0 ? pageSize * pages : null;
    }

    private static string CutShort(string path, byte[] head, long length)
    {
        var wal = new FileInfo(Target(path).FullName + "-wal");
        if (wal.Exists && wal.Length > 0)
            return "";
        return HeaderLength(head) is { } expected && length < expected
            ? string.Create(CultureInfo.InvariantCulture, $"; the file is {length} bytes but its header says {expected}: it was cut short")
            : "";
    }

    private static string SqliteMessage(SqliteException e) =>
        OneLine(e.Message.StartsWith("SQLite Error ", StringComparison.Ordinal) && e.Message.IndexOf('\'') is var q and > 0
            ? e.Message[(q + 1)..].TrimEnd('.', '\'')
            : e.Message);

    public static string OneLine(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..297] + "...";

    /// <summary>Mode 0600 for the database and the files next to it that exist (not on Windows). Returns the paths it changed.</summary>
    public static List<string> RestrictToOwner(string path, ILogger? log = null)
    {
        var changed = new List<string>();
        if (OperatingSystem.IsWindows())
            return changed;
        foreach (var file in Companions.Select(c => path + c).Prepend(path))
            if (RestrictFileToOwner(file, log))
                changed.Add(file);
        return changed;
    }

    /// <summary>Mode 0600 for one file, when it exists and others may read or write it (not on Windows); true when changed.</summary>
    public static bool RestrictFileToOwner(string file, ILogger? log = null)
    {
        if (OperatingSystem.IsWindows())
            return false;
        try
        {
            if (!File.Exists(file))
                return false;
            var mode = File.GetUnixFileMode(file);
            if ((mode & ~OwnerOnly) == 0)
                return false;
            File.SetUnixFileMode(file, OwnerOnly);
            log?.LogWarning("{File} was readable by others (mode {Mode}); it is now 0600", file, Octal(mode));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log?.LogWarning("Could not make {File} private (mode 0600): {Error}", file, e.Message);
            return false;
        }
    }

    public static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode, 8);

    /// <summary>A new empty file only the owner can read and write (fails when it exists).</summary>
    public static FileStream CreateOwnerOnly(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = OwnerOnly;
        return new FileStream(path, options);
    }

    /// <summary>Copies <paramref name="source"/> to the new file <paramref name="target"/> (0600) and flushes it to disk.</summary>
    public static void CopyOwnerOnly(string source, string target)
    {
        using var from = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var to = CreateOwnerOnly(target);
        from.CopyTo(to, 1 << 20);
        to.Flush(flushToDisk: true);
    }

    public static void FlushToDisk(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Deletes the file and the SQLite files next to it, when they exist.</summary>
    public static void DeleteWithCompanions(string path)
    {
        foreach (var file in Companions.Select(c => path + c).Prepend(path))
            if (File.Exists(file))
                File.Delete(file);
    }

    /// <summary>A path as a shell argument: quoted when it holds a space or another special character.</summary>
    public static string ShellQuote(string text) =>
        text.Length > 0 && text.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+=:@,%".Contains(c))
            ? text
            : "'" + text.Replace("'", "'\\''") + "'";
}
