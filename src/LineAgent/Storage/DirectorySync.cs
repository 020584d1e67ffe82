using System.Runtime.InteropServices;

namespace LineAgent.Storage;

/// <summary>
/// Makes a directory's entries durable: a file renamed into place is only on disk once its directory is synced (the
/// file's own fsync covers its contents, not its name). macOS: F_FULLFSYNC, which also flushes the drive's cache (plain
/// fsync does not there), else fsync. .NET opens no directory as a file, hence libc.
/// </summary>
public static class DirectorySync
{
    private const int FullFsync = 51; // F_FULLFSYNC (macOS)

    /// <summary>The errno of a file system that cannot sync a directory (EINVAL; ENOTSUP: 95 on Linux, 45 on macOS).</summary>
    public static bool IsUnsupported(IOException e) => e.HResult is 22 || e.HResult == (OperatingSystem.IsMacOS() ? 45 : 95);

    public static void Flush(string directory)
    {
        if (OperatingSystem.IsWindows())
            return;
        var fd = Libc.OpenDirectory(directory);
        if (fd < 0)
            throw new IOException($"Cannot open {directory} to sync it: {Marshal.GetLastPInvokeErrorMessage()}", Marshal.GetLastPInvokeError());
        try
        {
            if (OperatingSystem.IsMacOS() && Libc.fcntl(fd, FullFsync, 0) == 0)
                return;
            if (Libc.fsync(fd) != 0)
                throw new IOException($"Cannot sync {directory}: {Marshal.GetLastPInvokeErrorMessage()}", Marshal.GetLastPInvokeError());
        }
        finally
        {
            Libc.close(fd);
        }
    }
}

/// <summary>
/// One directory sync covers every rename done before it started: concurrent writers into the same directory (the
/// dry-run line's parallel sends) share one instead of each paying for its own.
/// </summary>
public sealed class SharedDirectorySync(string directory)
{
    private readonly SemaphoreSlim _one = new(1, 1);
    private long _renamed;
    private long _synced;
    private long _syncs;
    private volatile bool _unsupported;

    /// <summary>Directory syncs done so far.</summary>
    public long Syncs => Interlocked.Read(ref _syncs);

    /// <summary>Call after a rename into the directory; returns once a sync that began after it has completed.</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        if (_unsupported)
            return; // said once (the IOException below); retrying on every send would only repeat it
        var mine = Interlocked.Increment(ref _renamed);
        await _one.WaitAsync(ct);
        try
        {
            if (Volatile.Read(ref _synced) >= mine)
                return; // a sync that started after this rename has finished while this one waited
            var upTo = Volatile.Read(ref _renamed);
            try
            {
                DirectorySync.Flush(directory);
            }
            catch (IOException e) when (DirectorySync.IsUnsupported(e))
            {
                _unsupported = true; // a file system that cannot sync a directory (some network and FUSE mounts)
                throw;
            }
            Interlocked.Increment(ref _syncs);
            Volatile.Write(ref _synced, upTo);
        }
        finally
        {
            _one.Release();
        }
    }
}
