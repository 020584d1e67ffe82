namespace LineAgent.Storage;

/// <summary>
/// lineagent.db exists but must not be used: empty, damaged, unreadable or from a newer agent. The message is one
/// line for a person (path, what is wrong, what to do); `lineagent run` prints it alone and exits with <see cref="ExitCode"/>.
/// </summary>
public sealed class DatabaseUnusableException(string path, string problem, string advice, Exception? inner = null)
    : Exception($"lineagent: {path} {problem}. {advice}", inner)
{
    /// <summary>EX_CONFIG (sysexits.h): launchd's KeepAlive restarts it, but nothing a restart can fix.</summary>
    public const int ExitCodeConfig = 78;

    public string Path { get; } = path;
    public string Problem { get; } = problem;
    public int ExitCode => ExitCodeConfig;

    /// <summary>The exception itself or the first one of its inner exceptions (DI and the host wrap it).</summary>
    public static DatabaseUnusableException? Find(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++)
        {
            if (e is DatabaseUnusableException found)
                return found;
            if (e is AggregateException { InnerExceptions.Count: > 0 } aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                    if (Find(inner) is { } nested)
                        return nested;
                return null;
            }
            e = e.InnerException;
        }
        return null;
    }
}
