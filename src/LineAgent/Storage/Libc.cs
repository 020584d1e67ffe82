using System.Runtime.InteropServices;

namespace LineAgent.Storage;

/// <summary>The few libc calls .NET has no API for (it opens no directory as a file): a directory's sync and its lock.</summary>
internal static class Libc
{
    private const int ReadOnly = 0; // O_RDONLY, the same on Linux and macOS

    /// <summary>O_CLOEXEC: a process started meanwhile (osascript) does not inherit the descriptor.</summary>
    private static int CloseOnExec => OperatingSystem.IsMacOS() ? 0x1000000 : 0x80000;

    /// <summary>
    /// <paramref name="directory"/> opened read-only and close-on-exec, set atomically by open (no variadic fcntl afterwards:
    /// on Apple silicon a variadic call through P/Invoke passes its argument where the callee does not read it); -1 on error.
    /// </summary>
    public static int OpenDirectory(string directory) => open(directory, ReadOnly | CloseOnExec);

    [DllImport("libc", SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern int fsync(int fd);

    [DllImport("libc", SetLastError = true)]
    public static extern int fcntl(int fd, int cmd, int arg);

    [DllImport("libc", SetLastError = true)]
    public static extern int flock(int fd, int operation);

    [DllImport("libc", SetLastError = true)]
    public static extern int close(int fd);
}
