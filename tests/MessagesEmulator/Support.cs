using System.Diagnostics;
using System.Text;

namespace MessagesEmulation;

/// <summary>A usage or setup problem of the emulator itself: printed as `messages_emulator: ...`, exit 2.</summary>
public sealed class EmulatorException(string message) : Exception(message);

/// <summary>An AppleScript execution error: printed like osascript (`&lt;script&gt;: execution error: &lt;text&gt; (&lt;number&gt;)`), exit 1.</summary>
public sealed class ScriptError(int number, string message) : Exception(message)
{
    public int Number => number;
}

/// <summary>Small helpers shared by the commands: UTF-8, files, cross-process locks.</summary>
internal static class Util
{
    /// <summary>UTF-8 that never throws: invalid bytes become U+FFFD.</summary>
    public static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public static string Clean(byte[] raw) => Utf8.GetString(raw);

    public static byte[][] Tail(IReadOnlyList<byte[]> list, int start)
    {
        var tail = new byte[Math.Max(0, list.Count - start)][];
        for (var i = 0; i < tail.Length; i++)
            tail[i] = list[start + i];
        return tail;
    }

    public static void Write(Stream stream, string text) => Write(stream, Utf8.GetBytes(text));

    public static void Write(Stream stream, byte[] bytes)
    {
        stream.Write(bytes);
        stream.Flush();
    }

    /// <summary>Writes a temp file next to <paramref name="path"/> and renames it over (readers never see half a file).</summary>
    public static void WriteAtomic(string path, byte[] data)
    {
        var temp = $"{path}.tmp.{Environment.ProcessId}.{Guid.NewGuid():N}";
        File.WriteAllBytes(temp, data);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// Opens <paramref name="path"/> exclusively. On Unix .NET backs FileShare.None with flock(LOCK_EX | LOCK_NB),
    /// which works across processes on Linux and macOS; a held lock throws, so retry until it is free.
    /// The lock goes with the stream (and with the process, if it is killed).
    /// </summary>
    public static FileStream OpenExclusive(string path, FileMode mode, FileAccess access)
    {
        var clock = Stopwatch.StartNew();
        var delay = 1;
        while (true)
        {
            try
            {
                return new FileStream(path, mode, access, FileShare.None, bufferSize: 1);
            }
            catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(delay);
                delay = Math.Min(delay * 2, 16);
            }
        }
    }

    /// <summary>A stable 64-bit FNV-1a hash (string.GetHashCode differs per process).</summary>
    public static ulong Fnv1a(ReadOnlySpan<byte> data, ulong seed = 14695981039346656037UL)
    {
        var hash = seed;
        foreach (var b in data)
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }

    /// <summary>Formats 16 bytes as an uppercase RFC 4122 UUID of the given version.</summary>
    public static string FormatUuid(Span<byte> b, int version)
    {
        b[6] = (byte)((b[6] & 0x0F) | (version << 4));
        b[8] = (byte)((b[8] & 0x3F) | 0x80);
        var h = Convert.ToHexString(b);
        return $"{h[..8]}-{h[8..12]}-{h[12..16]}-{h[16..20]}-{h[20..]}";
    }

    public static void Sleep(double ms)
    {
        if (ms > 0)
            Thread.Sleep(TimeSpan.FromMilliseconds(ms));
    }

    /// <summary>Appends a line to emulator-errors.log (detached processes have no stderr). Never throws.</summary>
    public static void LogError(string home, string what)
    {
        try
        {
            File.AppendAllText(Path.Combine(home, "emulator-errors.log"),
                $"{DateTimeOffset.UtcNow:O} pid {Environment.ProcessId}: {what}\n");
        }
        catch (Exception)
        {
            // nowhere left to report it
        }
    }
}
