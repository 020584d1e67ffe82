using System.Runtime.InteropServices;

namespace MessagesEmulation;

/// <summary>Entry point: `dotnet MessagesEmulator.dll &lt;script file&gt; [args...]` or an admin command (see README.md).</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == Timeline.Command)
            return Timeline.Run(args);
        using var stdout = Console.OpenStandardOutput();
        using var stderr = Console.OpenStandardError();
        return Cli.Run(RawArgv.Get(args), Environment.GetEnvironmentVariable("MESSAGES_EMULATOR_HOME"), stdout, stderr, Console.OpenStandardInput);
    }
}

/// <summary>
/// The arguments as the exact bytes the process received: .NET decodes argv as UTF-8 and replaces invalid
/// bytes, so they are read again from /proc/self/cmdline (Linux) or _NSGetArgv (macOS).
/// </summary>
internal static class RawArgv
{
    public static byte[][] Get(string[] args)
    {
        var all = OperatingSystem.IsLinux() ? FromProc() : OperatingSystem.IsMacOS() ? FromNSGetArgv() : null;
        if (all is not null && all.Count > args.Length)
        {
            var tail = all.GetRange(all.Count - args.Length, args.Length).ToArray();
            var program = Util.Clean(all[all.Count - args.Length - 1]);
            // Only trust it if it lines up with what .NET decoded: same program, same valid-UTF-8 arguments.
            if (program.EndsWith("MessagesEmulator.dll", StringComparison.Ordinal) || program.EndsWith("MessagesEmulator", StringComparison.Ordinal))
            {
                var consistent = true;
                for (var i = 0; i < args.Length && consistent; i++)
                    consistent = !IsValidUtf8(tail[i]) || Util.Clean(tail[i]) == args[i];
                if (consistent)
                    return tail;
            }
        }
        var utf8 = new byte[args.Length][];
        for (var i = 0; i < args.Length; i++)
            utf8[i] = Util.Utf8.GetBytes(args[i]);
        return utf8;
    }

    private static bool IsValidUtf8(byte[] bytes) => System.Text.Unicode.Utf8.IsValid(bytes);

    private static List<byte[]>? FromProc()
    {
        byte[] data;
        try { data = File.ReadAllBytes("/proc/self/cmdline"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        var list = new List<byte[]>();
        var start = 0;
        for (var i = 0; i < data.Length; i++)
        {
            if (data[i] != 0)
                continue;
            list.Add(data[start..i]);
            start = i + 1;
        }
        return list;
    }

    private static List<byte[]>? FromNSGetArgv()
    {
        try
        {
            var argc = Marshal.ReadInt32(NSGetArgc());
            var argv = Marshal.ReadIntPtr(NSGetArgv());
            var list = new List<byte[]>(argc);
            for (var i = 0; i < argc; i++)
            {
                var p = Marshal.ReadIntPtr(argv, i * IntPtr.Size);
                var length = 0;
                while (Marshal.ReadByte(p, length) != 0)
                    length++;
                var bytes = new byte[length];
                Marshal.Copy(p, bytes, 0, length);
                list.Add(bytes);
            }
            return list;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [DllImport("/usr/lib/libSystem.dylib", EntryPoint = "_NSGetArgc")]
    private static extern IntPtr NSGetArgc();

    [DllImport("/usr/lib/libSystem.dylib", EntryPoint = "_NSGetArgv")]
    private static extern IntPtr NSGetArgv();
}
