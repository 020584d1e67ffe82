using Microsoft.Data.Sqlite;

namespace LineAgent.Storage;

/// <summary>
/// The database was deleted (or its data directory) under the running agent: a write committed now would reach only the
/// deleted file, which no later start finds. Refused (503 <c>storage_error</c>, nothing stored); the agent stops itself
/// (<see cref="DataDirWatch"/>).
/// </summary>
public sealed class DatabaseGoneException(string path)
    : IOException($"{path} was deleted (or its data directory) while the agent ran")
{
    public string Path { get; } = path;
}

/// <summary>
/// Whether lineagent.db is still where the agent opened it: there and not empty. A stat (a few microseconds): every commit
/// asks (<see cref="Db.GuardCommits"/>), <see cref="DataDirWatch"/> now and then while nothing is written.
/// </summary>
public sealed class DatabasePresence(string path)
{
    /// <summary>SQLITE_CONSTRAINT_COMMITHOOK: a commit the guard turned into a rollback.</summary>
    public const int RefusedCommit = 531;

    public string Path { get; } = path;

    /// <summary>Raised (on the caller's thread) when a commit or <see cref="EnsureThere"/> finds the database gone.</summary>
    public event Action? Missed;

    /// <summary>Gone, or made again empty under the same name (a new connection re-creates a 0-byte file).</summary>
    public bool IsThere() => new FileInfo(Path) is { Exists: true, Length: > 0 };

    /// <summary>Throws <see cref="DatabaseGoneException"/> (and raises <see cref="Missed"/>) when the database is gone.</summary>
    public void EnsureThere()
    {
        if (Gone())
            throw new DatabaseGoneException(Path);
    }

    /// <summary>Not <see cref="IsThere"/>; raises <see cref="Missed"/> when so.</summary>
    internal bool Gone()
    {
        if (IsThere())
            return false;
        RaiseMissed();
        return true;
    }

    internal void RaiseMissed() => Missed?.Invoke();

    /// <summary>A write refused because the database was deleted under the agent (by the guard or the writer).</summary>
    public static bool IsGone(Exception? e) => e switch
    {
        DatabaseGoneException => true,
        SqliteException { SqliteExtendedErrorCode: RefusedCommit } => true,
        null => false,
        _ => IsGone(e.InnerException),
    };
}
