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

    private readonly Held _held;

    public DataDirLock(DataDirectory dir) : this(dir, DefaultWait)
    {
    }

    public DataDirLock(DataDirectory dir, TimeSpan wait)
    {
        // One line at start-up (exit 78), not a stack trace: the usual cause is a second `lineagent run`.
        _held = TryOpen(dir.LockFile, wait) ?? throw new StartupRefusedException(
            $"lineagent: another LineAgent is already running with the data directory {dir.Root} (its lock {dir.LockFile} is held). " +
            "Stop it (launchctl bootout, or Ctrl+C), or give this one another --data-dir.");
        try
        {
            _held.File.SetLength(0);
            using var writer = new StreamWriter(_held.File, leaveOpen: true);
            writer.Write(Environment.ProcessId);
        }
        catch (IOException)
        {
            // A full disk (probe: a stack trace and exit 1). The pid is a note for people; the lock is the open file. What a full
            // disk stops is said by the database's own check next, in one line.
        }
    }

    /// <summary>
    /// <paramref name="lockFile"/> opened exclusively, and its directory locked too (both held until disposal), waiting up
    /// to <paramref name="wait"/> for a holder that is stopping; null when either is still held then. Also for
    /// `lineagent restore`, which must not replace the database under an agent that is still writing its last changes.
    /// </summary>
    /// <remarks>
    /// The file alone was not enough: agent.lock stays behind after every crash with a pid in it, like a stale pid file, and
    /// once it was deleted a second agent locked a new one and ran beside the first, sending their in-flight dry-run sends
    /// again (probe). A directory cannot be deleted from under the agent's data.
    /// </remarks>
    public static Held? TryOpen(string lockFile, TimeSpan wait)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // Unbuffered: a pid note that could not be written (a full disk) must not be flushed again, and throw, at Dispose (review).
                var file = new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
                if (DirectoryLock.TryTake(Path.GetDirectoryName(Path.GetFullPath(lockFile))!) is { } directory)
                    return new Held(file, directory);
                file.Dispose();
                throw new IOException("the data directory is locked by another process");
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

    public void Dispose() => _held.Dispose();

    /// <summary>agent.lock and the lock on its directory.</summary>
    public sealed class Held(FileStream file, IDisposable directory) : IDisposable
    {
        public FileStream File { get; } = file;

        public void Dispose()
        {
            directory.Dispose();
            File.Dispose();
        }
    }
}

/// <summary>
/// flock(2) on a directory (Linux, macOS): exclusive and advisory, released when the process ends however it ends. Opened
/// close-on-exec, so the osascript and other children the agent starts never inherit (and outlive it holding) the lock.
/// </summary>
internal static class DirectoryLock
{
    private const int LockExclusive = 2, LockNonBlocking = 4; // LOCK_EX, LOCK_NB: the same on Linux and macOS

    /// <summary>The lock; null when another process holds it; a lock that does nothing where none can be taken (Windows, a file system without flock).</summary>
    public static IDisposable? TryTake(string directory)
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()))
            return NoLock.Instance;
        var fd = Storage.Libc.OpenDirectory(directory);
        if (fd < 0)
            return NoLock.Instance; // agent.lock in it opened: what cannot open the directory is no second agent
        var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        if (Storage.Libc.flock(fd, LockExclusive | LockNonBlocking) == 0)
            return handle;
        var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        handle.Dispose();
        return errno == (OperatingSystem.IsMacOS() ? 35 : 11) ? null : NoLock.Instance; // EWOULDBLOCK: held; else flock is not supported here
    }

    private sealed class NoLock : IDisposable
    {
        public static readonly NoLock Instance = new();

        public void Dispose()
        {
        }
    }
}
