using System.Globalization;

namespace MessagesEmulation;

/// <summary>The command line: admin commands by name, anything else is a script path (osascript's first argument).</summary>
public static class Cli
{
    public const string Usage = """
        usage:
          MessagesEmulator <script file> [args...]      as osascript: send/status/restart-messages.applescript
          MessagesEmulator init --schema 15|26 [--me ADDR] [--sms-number +1...] [--force] [--schema-file F]
          MessagesEmulator incoming <handle> <text> [--service iMessage|SMS|RCS] [--date ISO|unix-s] [--guid G]
          MessagesEmulator rebuild [--keep N | --shuffle]
          MessagesEmulator delete <ROWID>
          MessagesEmulator dump | calls | state | reset | quit | launch
          MessagesEmulator control '<json>' | control -
          MessagesEmulator decode <blob file>
        State directory: $MESSAGES_EMULATOR_HOME

        """;

    private static readonly HashSet<string> AdminCommands = ["init", "incoming", "rebuild", "delete", "dump", "calls", "state", "reset", "quit", "launch", "control", "decode"];

    /// <summary>Runs one command; returns the exit code (0, 1 = AppleScript error or no text, 2 = emulator problem).</summary>
    public static int Run(IReadOnlyList<byte[]> rawArgs, string? home, Stream stdout, Stream stderr, Func<Stream>? stdin = null)
    {
        if (rawArgs.Count == 0 || Util.Clean(rawArgs[0]) is "-h" or "--help")
        {
            Util.Write(stderr, Usage);
            return 2;
        }
        var first = Util.Clean(rawArgs[0]);
        return AdminCommands.Contains(first) ? RunAdmin(rawArgs, home, stdout, stderr, stdin) : RunScript(rawArgs, home, stdout, stderr);
    }

    /// <summary>A script call: the path of the script, then its arguments (kept apart so that start-up JITs little).</summary>
    private static int RunScript(IReadOnlyList<byte[]> rawArgs, string? home, Stream stdout, Stream stderr)
    {
        try
        {
            return Scripts.Run(Home(home), rawArgs[0], Util.Tail(rawArgs, 1), stdout, stderr);
        }
        catch (Exception e)
        {
            return Problem(e, stderr);
        }
    }

    private static int RunAdmin(IReadOnlyList<byte[]> rawArgs, string? home, Stream stdout, Stream stderr, Func<Stream>? stdin)
    {
        var args = new string[rawArgs.Count];
        for (var i = 0; i < args.Length; i++)
            args[i] = Util.Clean(rawArgs[i]);
        void Out(string text) => Util.Write(stdout, text);
        try
        {
            switch (args[0])
            {
                case "init":
                {
                    var o = Options(args[1..], "init", ["--schema", "--me", "--sms-number", "--schema-file"], ["--force"]);
                    var schema = o.GetValueOrDefault("--schema") ?? throw new EmulatorException("init: --schema 15|26 is required");
                    var h = Home(home);
                    if (Admin.Init(h, schema, o.GetValueOrDefault("--me") ?? Defaults.Me, o.GetValueOrDefault("--sms-number") ?? Defaults.SmsNumber,
                            o.ContainsKey("--force"), o.GetValueOrDefault("--schema-file")))
                        Out(ChatDb.PathIn(h) + "\n");
                    else
                        Util.Write(stderr, $"messages_emulator: {ChatDb.PathIn(h)} already initialised (schema {schema})\n");
                    return 0;
                }
                case "incoming":
                {
                    // Options only as trailing `--name value` pairs after the two positionals: any text is literal.
                    const string usage = "usage: incoming <handle> <text> [--service iMessage|SMS|RCS] [--date ISO|unix-s] [--guid G]";
                    if (args.Length < 3 || (args.Length - 3) % 2 != 0)
                        throw new EmulatorException(usage);
                    var o = new Dictionary<string, string>();
                    for (var i = 3; i < args.Length; i += 2)
                    {
                        if (args[i] is not ("--service" or "--date" or "--guid") || !o.TryAdd(args[i], args[i + 1]))
                            throw new EmulatorException(usage);
                    }
                    var date = o.TryGetValue("--date", out var d) ? Admin.ParseDate(d) : (DateTimeOffset?)null;
                    var id = Admin.Incoming(Home(home), args[1], args[2], o.GetValueOrDefault("--service") ?? "iMessage", date, o.GetValueOrDefault("--guid"));
                    Out($"{id}\n");
                    return 0;
                }
                case "rebuild":
                {
                    var o = Options(args[1..], "rebuild", ["--keep"], ["--shuffle"]);
                    var keep = 0;
                    if (o.TryGetValue("--keep", out var k) && !int.TryParse(k, NumberStyles.None, CultureInfo.InvariantCulture, out keep))
                        throw new EmulatorException($"rebuild: --keep takes a number, got {k}");
                    if (o.ContainsKey("--shuffle") && o.ContainsKey("--keep"))
                        throw new EmulatorException("rebuild: --shuffle keeps every message; give --keep or --shuffle");
                    Out($"{Admin.Rebuild(Home(home), keep, shuffle: o.ContainsKey("--shuffle"))}\n");
                    return 0;
                }
                case "dump":
                    NoArgs(args);
                    foreach (var row in Admin.Dump(Home(home)))
                        Out(row.ToJsonString(Json.Compact) + "\n");
                    return 0;
                case "calls":
                    NoArgs(args);
                    foreach (var call in Admin.Calls(Home(home)))
                        Out(call.ToJsonString(Json.Compact) + "\n");
                    return 0;
                case "state":
                    NoArgs(args);
                    Out(Admin.StateJson(Home(home)) + "\n");
                    return 0;
                case "reset":
                    NoArgs(args);
                    Admin.Reset(Home(home));
                    return 0;
                case "delete":
                {
                    if (args.Length != 2 || !long.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var rowId))
                        throw new EmulatorException($"delete: give one ROWID\n{Usage}");
                    if (!Admin.Delete(Home(home), rowId))
                        throw new EmulatorException($"delete: no message with ROWID {rowId}");
                    return 0;
                }
                case "quit":
                    NoArgs(args);
                    Admin.Quit(Home(home));
                    return 0;
                case "launch":
                    NoArgs(args);
                    Admin.Launch(Home(home));
                    return 0;
                case "control":
                {
                    if (args.Length != 2)
                        throw new EmulatorException("usage: control '<json object>' (or - to read stdin)");
                    var json = args[1];
                    if (json == "-")
                    {
                        using var reader = new StreamReader(stdin?.Invoke() ?? Stream.Null, Util.Utf8);
                        json = reader.ReadToEnd();
                    }
                    Admin.Control(Home(home), json);
                    return 0;
                }
                case "decode":
                {
                    if (args.Length != 2)
                        throw new EmulatorException("usage: decode <blob file>");
                    byte[] blob;
                    try { blob = File.ReadAllBytes(args[1]); }
                    catch (IOException e) { throw new EmulatorException($"decode: {e.Message}"); }
                    var text = Admin.Decode(blob);
                    if (text is null)
                    {
                        Util.Write(stderr, "no text\n");
                        return 1;
                    }
                    Out(text + "\n");
                    return 0;
                }
                default:
                    throw new EmulatorException($"unknown command {args[0]}");
            }
        }
        catch (Exception e)
        {
            return Problem(e, stderr);
        }
    }

    /// <summary>Emulator problems exit 2 with `messages_emulator: ...`; a bug or a broken chat.db never looks like an AppleScript error.</summary>
    private static int Problem(Exception e, Stream stderr)
    {
        Util.Write(stderr, e is EmulatorException ? $"messages_emulator: {e.Message}\n" : $"messages_emulator: internal error\n{e}\n");
        return 2;
    }

    private static string Home(string? home)
    {
        if (string.IsNullOrEmpty(home))
            throw new EmulatorException("MESSAGES_EMULATOR_HOME is not set");
        Directory.CreateDirectory(home);
        return home;
    }

    private static void NoArgs(string[] args)
    {
        if (args.Length != 1)
            throw new EmulatorException($"usage: {args[0]} (takes no arguments)");
    }

    private static Dictionary<string, string?> Options(string[] args, string command, string[] withValue, string[] flags)
    {
        var options = new Dictionary<string, string?>();
        for (var i = 0; i < args.Length; i++)
        {
            if (flags.Contains(args[i]))
                options[args[i]] = null;
            else if (withValue.Contains(args[i]) && i + 1 < args.Length)
                options[args[i]] = args[++i];
            else
                throw new EmulatorException($"{command}: unexpected argument {args[i]}\n{Usage}");
        }
        return options;
    }
}
