using System.Globalization;

namespace LineAgent.Storage;

/// <summary>
/// A refused lineagent.db is remembered next to it (lineagent.db.refused: its size, modification time and the finding),
/// so that the restarts launchd makes every 10 s refuse it at once instead of reading the whole file again. Any change
/// to the file (a restore, a repair, a move) makes it be checked again. Best effort: without the memo it is checked.
/// </summary>
internal static class RefusalMemo
{
    private static string MemoPath(string path) => path + ".refused";

    public static DatabaseInspection? Read(string path)
    {
        try
        {
            var memo = MemoPath(path);
            if (!File.Exists(memo))
                return null;
            var lines = File.ReadAllLines(memo);
            var info = DatabaseFile.Target(path);
            if (lines.Length < 5 || !info.Exists
                || lines[0] != info.Length.ToString(CultureInfo.InvariantCulture)
                || lines[1] != info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)
                || !Enum.TryParse<DatabaseState>(lines[2], out var state) || state is not (DatabaseState.Damaged or DatabaseState.Empty)
                || !int.TryParse(lines[3], CultureInfo.InvariantCulture, out var version))
                return null;
            return new DatabaseInspection(path, state, string.Join(' ', lines.Skip(4)), version, info.Length, TimeSpan.Zero);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static void Write(string path, DatabaseInspection found)
    {
        try
        {
            // Only what the file's bytes decide: not Newer (a newer agent can use it) nor Unreadable (a chmod fixes it and
            // leaves the modification time as it was).
            var info = DatabaseFile.Target(path);
            if (!info.Exists || found.State is not (DatabaseState.Damaged or DatabaseState.Empty))
                return;
            File.WriteAllLines(MemoPath(path),
            [
                info.Length.ToString(CultureInfo.InvariantCulture), info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture),
                found.State.ToString(), found.Version.ToString(CultureInfo.InvariantCulture), (found.Problem ?? "").ReplaceLineEndings(" "),
            ]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    public static void Clear(string path)
    {
        try
        {
            File.Delete(MemoPath(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
