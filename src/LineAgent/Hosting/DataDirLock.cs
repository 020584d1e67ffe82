using System.Diagnostics;

namespace LineAgent.Hosting;

/// <summary>One agent per data directory: an exclusive lock on &lt;data dir&gt;/agent.lock, held until disposal.</summary>
public sealed class DataDirLock : IDisposable
{
    /// <summary>
    /// How long a start waits for the lock before it refuses: an agent that is still stopping (launchd's restart of a
    /// stopped agent, `launchctl kickstart -k`; in tests a host whose disposal finishes on its own thread) releases it
    /// within moments, and a second `lineagent run` is refused a little later instead of at once.
    /// </summary>
    public static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(5);

    private readonly FileStream _stream;

    public DataDirLock(DataDirectory dir) : this(dir, DefaultWait)
    {
    }

    public DataDirLock(DataDirectory dir, TimeSpan wait)
    {
        // One line at start-up (exit 78), not a stack trace: the usual cause is a second `lineagent run`.
        _stream = TryOpen(dir.LockFile, wait) ?? throw new StartupRefusedException(
            $"lineagent: another LineAgent is already running with the data directory {dir.Root} (its lock {dir.LockFile} is held). " +
            "Stop it (launchctl bootout, or Ctrl+C), or give this one another --data-dir.");
        try
        {
            _stream.SetLength(0);
            using var writer = new StreamWriter(_stream, leaveOpen: true);
            writer.Write(Environment.ProcessId);
        }
        catch (IOException)
        {
            // A full disk (probe: a stack trace and exit 1). The pid is a note for people; the lock is the open file. What a full
            // disk stops is said by the database's own check next, in one line.
        }
    }

    /// <summary>
    /// <paramref name="lockFile"/> opened exclusively (the hold on it lasts until the stream is disposed), waiting up
    /// to <paramref name="wait"/> for a holder that is stopping; null when it is still held then. Also for
    /// `lineagent restore`, which must not replace the database under an agent that is still writing its last changes.
    /// </summary>
    public static FileStream? TryOpen(string lockFile, TimeSpan wait)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // Unbuffered: a pid note that could not be written (a full disk) must not be flushed again, and throw, at Dispose (review).
                return new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
            }
            catch (IOException) when (waited.Elapsed < wait)
            {
                Thread.Sleep(TimeSpan.FromMilliseconds(100));
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
