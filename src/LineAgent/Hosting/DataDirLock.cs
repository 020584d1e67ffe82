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
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                _stream = new FileStream(dir.LockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                break;
            }
            catch (IOException e) when (waited.Elapsed >= wait)
            {
                // One line at start-up (exit 78), not a stack trace: the usual cause is a second `lineagent run`.
                throw new StartupRefusedException(
                    $"lineagent: another LineAgent is already running with the data directory {dir.Root} (its lock {dir.LockFile} is held). " +
                    "Stop it (launchctl bootout, or Ctrl+C), or give this one another --data-dir.", e);
            }
            catch (IOException)
            {
                Thread.Sleep(TimeSpan.FromMilliseconds(100));
            }
        }
        _stream.SetLength(0);
        using var writer = new StreamWriter(_stream, leaveOpen: true);
        writer.Write(Environment.ProcessId);
    }

    public void Dispose() => _stream.Dispose();
}
