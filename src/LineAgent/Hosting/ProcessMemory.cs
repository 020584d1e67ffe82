using System.Runtime.InteropServices;

namespace LineAgent.Hosting;

/// <summary>Process-wide memory settings, made at the very start of <c>Main</c>.</summary>
public static class ProcessMemory
{
    private const int MArenaMax = -8; // M_ARENA_MAX, glibc's malloc.h

    /// <summary>Arenas glibc's malloc may make: the main one and one more.</summary>
    public const int MallocArenas = 2;

    /// <summary>
    /// glibc only (Linux): caps malloc at <see cref="MallocArenas"/> arenas. By default it makes one per thread that
    /// allocates, up to 8 per core; under the POST load the JIT and SQLite allocate on many thread-pool threads, and each
    /// arena kept its own free memory: 21 MB of arenas for 12 MB in use (malloc_stats). Measured with wrk, 32
    /// connections, 15 s: peak RSS 124-132 MB (mean 128) -> 121-126 MB (mean 124), requests/s unchanged (README
    /// Performance). macOS's malloc has no such arenas; there (and on a libc without mallopt) this does nothing and
    /// returns false.
    /// </summary>
    public static bool LimitMallocArenas()
    {
        if (!OperatingSystem.IsLinux())
            return false;
        try
        {
            return mallopt(MArenaMax, MallocArenas) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
