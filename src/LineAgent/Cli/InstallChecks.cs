using System.ComponentModel;
using System.Diagnostics;
using System.Xml;
using System.Xml.Linq;

namespace LineAgent.Cli;

/// <summary>
/// What <see cref="InstallChecks"/> needs from the machine: the OS, the user, and a way to run the Mac
/// tools (launchctl, sfltool, codesign, stat). Tests pass stand-ins; <see cref="Current"/> is the real one.
/// </summary>
public sealed record InstallProbe
{
    public required bool IsMacOS { get; init; }
    public required string Home { get; init; }
    public required string UserName { get; init; }
    public required string Uid { get; init; }

    /// <summary>Runs a program to completion: its exit code (-1 when it could not run) and stdout + stderr.</summary>
    public required Func<string, string[], (int ExitCode, string Output)> Run { get; init; }

    public static InstallProbe Current()
    {
        var run = RunProcess;
        var (code, uid) = OperatingSystem.IsMacOS() ? run("/usr/bin/id", ["-u"]) : (1, "");
        return new InstallProbe
        {
            IsMacOS = OperatingSystem.IsMacOS(),
            Home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile),
            UserName = Environment.UserName,
            Uid = code == 0 ? uid.Trim() : "$UID",
            Run = run,
        };
    }

    private static (int, string) RunProcess(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            p.StandardInput.Close();   // never wait for a password prompt
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromSeconds(15)))
            {
                p.Kill(entireProcessTree: true);
                return (-1, $"{Path.GetFileName(file)} did not finish within 15 s");
            }
            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (Win32Exception e)
        {
            return (-1, $"{file} cannot run: {e.Message}");
        }
    }
}

/// <summary>
/// `lineagent doctor`'s checks of the Mac service: the installed binary and LaunchAgent, whether launchd
/// has it loaded, "Allow in the Background" (Login Items), the user's GUI session, and whether the
/// binary's signature lets macOS keep its permission grants across updates. See launchd/README.md.
/// </summary>
public static class InstallChecks
{
    public const string DefaultLabel = "com.lineagent.agent";
    private const string Readme = "launchd/README.md";

    /// <summary>
    /// The checks, for the install named by configuration: Agent:LaunchdLabel (default com.lineagent.agent)
    /// and Agent:InstallPrefix (default: what the installed plist says, else ~/Library/Application Support/LineAgent).
    /// </summary>
    public static IEnumerable<Check> Run(IConfiguration config, string dataDir, InstallProbe? probe = null)
    {
        probe ??= InstallProbe.Current();
        if (!probe.IsMacOS)
            return [new("LaunchAgent install", Check.Skip, "not macOS: the LaunchAgent, login item, session and signature checks run on a Mac", Required: false)];

        var label = config["Agent:LaunchdLabel"] is { Length: > 0 } l ? l : DefaultLabel;
        var plistPath = Path.Combine(probe.Home, "Library", "LaunchAgents", label + ".plist");
        var plist = LaunchAgentPlist.Read(plistPath);
        var (prefix, prefixSource) = config["Agent:InstallPrefix"] is { Length: > 0 } p ? (Full(p), "Agent:InstallPrefix")
            : plist.InstallPrefix is { } fromPlist ? (fromPlist, plistPath)
            : (Path.Combine(probe.Home, "Library", "Application Support", "LineAgent"), "the default");
        var binary = Path.Combine(prefix, "bin", "lineagent");
        var service = $"gui/{probe.Uid}/{label}";
        var checks = new List<Check>();

        var installed = File.Exists(binary);
        checks.Add(installed
            ? new("Installed binary", Check.Ok, $"{binary} (prefix from {prefixSource})")
            : new("Installed binary", Check.Warn, $"{binary} does not exist (prefix from {prefixSource})",
                "Install it: bash launchd/install.sh (add --prefix DIR for another place; tell doctor with --Agent:InstallPrefix=DIR).", Required: false));

        checks.Add(plist.Error switch
        {
            null => new("LaunchAgent plist", Check.Ok, $"{plistPath} (label {label})"),
            _ when !File.Exists(plistPath) => new("LaunchAgent plist", Check.Warn, $"{plistPath} does not exist: nothing starts the agent at login",
                "Install it: bash launchd/install.sh (another label: doctor --Agent:LaunchdLabel=LABEL).", Required: false),
            _ => new("LaunchAgent plist", Check.Fail, $"{plistPath} cannot be read: {plist.Error}", "Run bash launchd/install.sh again: it rewrites the plist."),
        });
        if (plist.DataDir is { } agentDataDir && !SamePath(agentDataDir, dataDir))
            checks.Add(new("LaunchAgent data dir", Check.Warn, $"the LaunchAgent uses {agentDataDir}; this doctor run looked at {dataDir}",
                $"Check the installed agent's data: lineagent doctor --data-dir \"{agentDataDir}\"", Required: false));

        var session = probe.Run("/bin/launchctl", ["print", $"gui/{probe.Uid}"]);
        var hasSession = session.ExitCode == 0;
        checks.Add(LoadedCheck(probe, service, plistPath, plist.Error is null, hasSession));
        checks.Add(BackgroundCheck(probe, label, binary, plistPath, plist.Error is null));
        checks.Add(SessionCheck(probe, hasSession, session.Output));
        checks.Add(SignatureCheck(probe, binary, installed));
        return checks;
    }

    private static Check LoadedCheck(InstallProbe probe, string service, string plistPath, bool hasPlist, bool hasSession)
    {
        const string name = "LaunchAgent loaded";
        var (code, output) = probe.Run("/bin/launchctl", ["print", service]);
        if (code == 0)
        {
            var state = Field(output, "state");
            var pid = Field(output, "pid");
            var lastExit = Field(output, "last exit code");
            if (state == "running")
                return new(name, Check.Ok, $"{service} is running{(pid is null ? "" : $", pid {pid}")}");
            return new(name, Check.Warn, $"{service} is loaded but {state ?? "not running"}{(lastExit is null ? "" : $" (last exit code {lastExit})")}",
                $"Look at ~/Library/Logs/LineAgent/lineagent.err.log, then: launchctl kickstart -k {service}", Required: false);
        }
        if (!hasPlist)
            return new(name, Check.Skip, $"{service} is not loaded (no LaunchAgent plist)", Required: false);
        var bootstrap = $"launchctl enable {service} && launchctl bootstrap gui/{probe.Uid} \"{plistPath}\"";
        return hasSession
            ? new(name, Check.Fail, $"{service} is not loaded: launchd does not run the agent", $"Load it: {bootstrap} (kickstart works only on a loaded service)")
            : new(name, Check.Warn, $"{service} is not loaded: there is no GUI session to load it in (see \"GUI login session\")",
                $"After logging in at the Mac launchd loads it by itself; else: {bootstrap}", Required: false);
    }

    private static Check BackgroundCheck(InstallProbe probe, string label, string binary, string plistPath, bool hasPlist)
    {
        const string name = "Allow in the Background";
        if (!hasPlist)
            return new(name, Check.Skip, "no LaunchAgent plist", Required: false);
        var (code, output) = probe.Run("/usr/bin/sfltool", ["dumpbtm"]);
        if (code != 0)
        {
            var why = FirstLine(output) ?? $"exit code {code}";
            return new(name, Check.Skip,
                $"could not read the login items (sfltool dumpbtm: {why}); look under System Settings > General > Login Items, or run: sudo sfltool dumpbtm",
                Required: false);
        }
        var records = BackgroundTasks.Parse(output, probe.Uid)
            .Where(r => r.Matches(label, binary, plistPath))
            .ToList();
        if (records.Count == 0)
            return new(name, Check.Warn, $"sfltool dumpbtm lists no record for {label} yet (macOS adds it when launchd first loads the LaunchAgent)",
                "Load it once (see \"LaunchAgent loaded\"), then run doctor again.", Required: false);
        if (records.Any(r => r.Enabled))
            return new(name, Check.Ok, $"{label} is allowed to run in the background (sfltool dumpbtm: {records.First(r => r.Enabled).Disposition})");
        return new(name, Check.Fail,
            $"{label} is switched off under System Settings > General > Login Items > Allow in the Background: launchd does not start it ({records[0].Disposition})",
            $"Switch it on there (it shows as \"lineagent\", perhaps under an unidentified developer), then: launchctl bootstrap gui/{probe.Uid} \"{plistPath}\"");
    }

    private static Check SessionCheck(InstallProbe probe, bool hasSession, string sessionOutput)
    {
        const string name = "GUI login session";
        var fix = $"A LaunchAgent runs only while {probe.UserName} is logged in at the Mac (not over ssh): turn on automatic login, or stay logged in, and keep the Mac from sleeping ({Readme}, \"After login, and sleep\").";
        if (!hasSession)
            return new(name, Check.Warn, $"{probe.UserName} has no GUI login session (launchctl print gui/{probe.Uid}: {FirstLine(sessionOutput) ?? "failed"}): the agent cannot run until they log in", fix, Required: false);
        var (code, console) = probe.Run("/usr/bin/stat", ["-f%Su", "/dev/console"]);
        var consoleUser = code == 0 ? console.Trim() : null;
        if (consoleUser is null || consoleUser == probe.UserName)
            return new(name, Check.Ok, $"{probe.UserName} is logged in at the Mac (gui/{probe.Uid})");
        var who = consoleUser is "root" or "loginwindow" ? "the login window" : $"'{consoleUser}'";
        return new(name, Check.Warn, $"{probe.UserName} has a GUI session, but the screen belongs to {who}: this session runs in the background and ends at a restart", fix, Required: false);
    }

    private static Check SignatureCheck(InstallProbe probe, string binary, bool installed)
    {
        const string name = "Code signature";
        if (!installed)
            return new(name, Check.Skip, "no installed binary", Required: false);
        var (code, output) = probe.Run("/usr/bin/codesign", ["-dr", "-", binary]);
        if (code == -1)
            return new(name, Check.Skip, $"codesign did not run: {FirstLine(output)}", Required: false);
        var requirement = output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("designated =>", StringComparison.Ordinal));
        const string fix = "Sign it with a code-signing certificate (a self-signed one is enough): bash launchd/install.sh --sign \"NAME\"; then grant the permissions once more (" + Readme + ", \"Permissions and code signing\").";
        if (requirement is null)
            return new(name, Check.Warn, $"no designated requirement ({FirstLine(output) ?? $"codesign exit code {code}"})", fix, Required: false);
        if (requirement.Contains("cdhash", StringComparison.Ordinal))
            return new(name, Check.Warn,
                "ad-hoc signature: macOS ties Full Disk Access and Automation to this exact binary (its cdhash), so every changed install needs them granted again",
                fix, Required: false);
        return new(name, Check.Ok, $"signed with a certificate: permission grants survive updates ({requirement})");
    }

    /// <summary>"key = value" from `launchctl print` (the first, top-level one).</summary>
    private static string? Field(string output, string key)
    {
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith(key + " = ", StringComparison.Ordinal))
                return line[(key.Length + 3)..].Trim();
        }
        return null;
    }

    private static string? FirstLine(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();

    private static string Full(string path) => Path.GetFullPath(path).TrimEnd('/');

    private static bool SamePath(string a, string b) => Full(a) == Full(b);

    /// <summary>The few things doctor needs from the installed plist (an XML plist, as install.sh writes it).</summary>
    private sealed record LaunchAgentPlist(string? Error, string? Program = null, string? DataDir = null, string? Prefix = null)
    {
        /// <summary>LINEAGENT__Agent__InstallPrefix, else the directory above ProgramArguments[0]'s bin/.</summary>
        public string? InstallPrefix =>
            Prefix is { Length: > 0 } ? Prefix.TrimEnd('/')
            : Program is { } program && Path.GetDirectoryName(program) is { } bin && Path.GetFileName(bin) == "bin" ? Path.GetDirectoryName(bin)
            : null;

        public static LaunchAgentPlist Read(string path)
        {
            if (!File.Exists(path))
                return new("does not exist");
            try
            {
                using var reader = XmlReader.Create(path, new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null });
                var dict = XDocument.Load(reader).Root?.Element("dict") ?? throw new FormatException("no <dict> in <plist>");
                var top = Pairs(dict);
                var env = top.TryGetValue("EnvironmentVariables", out var e) && e.Name == "dict" ? Pairs(e) : [];
                var program = top.TryGetValue("ProgramArguments", out var args) ? args.Elements("string").FirstOrDefault()?.Value
                    : top.TryGetValue("Program", out var prog) ? prog.Value : null;
                return new(null, program,
                    env.TryGetValue("LINEAGENT__Agent__DataDir", out var d) ? d.Value : null,
                    env.TryGetValue("LINEAGENT__Agent__InstallPrefix", out var p) ? p.Value : null);
            }
            catch (Exception ex) when (ex is XmlException or FormatException or IOException or UnauthorizedAccessException)
            {
                return new($"not an XML plist ({ex.Message})");
            }
        }

        private static Dictionary<string, XElement> Pairs(XElement dict)
        {
            var result = new Dictionary<string, XElement>();
            XElement? key = null;
            foreach (var e in dict.Elements())
            {
                if (e.Name == "key") key = e;
                else if (key is not null) { result[key.Value] = e; key = null; }
            }
            return result;
        }
    }
}

/// <summary>
/// Records of `sfltool dumpbtm` (macOS 13+ Background Task Management): sections "Records for UID n",
/// items " #n:" with "Key: value" lines, among them "Disposition: [enabled|disabled, allowed, ...] (0x..)".
/// </summary>
public static class BackgroundTasks
{
    public sealed record Item(string? Uid, IReadOnlyDictionary<string, string> Fields)
    {
        public string Disposition => Fields.TryGetValue("Disposition", out var d) ? d : "";

        /// <summary>"disabled" is switched off under Login Items > Allow in the Background ("enabled" contains no comma-separated "disabled").</summary>
        public bool Enabled => !DispositionFlags.Contains("disabled");

        public IReadOnlyList<string> DispositionFlags
        {
            get
            {
                var d = Disposition;
                var open = d.IndexOf('[');
                var close = d.IndexOf(']');
                return open < 0 || close < open ? [] : d[(open + 1)..close].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            }
        }

        /// <summary>This LaunchAgent: its label as identifier ("16.com.lineagent.agent" too), its plist as URL, or its binary.</summary>
        public bool Matches(string label, string binary, string plistPath)
        {
            string F(string key) => Fields.TryGetValue(key, out var v) ? v : "";
            var id = F("Identifier");
            if (id == label || id.EndsWith("." + label, StringComparison.Ordinal)) return true;
            foreach (var key in new[] { "URL", "Plist Path" })
            {
                var url = Uri.UnescapeDataString(F(key));
                if (url.EndsWith("/" + label + ".plist", StringComparison.Ordinal) || url.EndsWith(plistPath, StringComparison.Ordinal)) return true;
            }
            return F("Executable Path") == binary;
        }
    }

    /// <summary>The items of one user (all items when the dump has no per-UID sections).</summary>
    public static IReadOnlyList<Item> Parse(string dump, string uid)
    {
        var items = new List<Item>();
        string? sectionUid = null;
        Dictionary<string, string>? fields = null;
        void Flush()
        {
            if (fields is { Count: > 0 }) items.Add(new(sectionUid, fields));
            fields = null;
        }
        foreach (var raw in dump.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var trimmed = line.Trim();
            if (trimmed.StartsWith("Records for UID ", StringComparison.Ordinal))
            {
                Flush();
                sectionUid = trimmed["Records for UID ".Length..].Split(' ', 2)[0];
                continue;
            }
            // An item starts at " #1:" alone on its line (nested lists such as "    #1: 16.com.x" carry a value).
            if (trimmed.Length > 2 && trimmed[0] == '#' && trimmed[^1] == ':' && trimmed[1..^1].All(char.IsAsciiDigit) && line.Length - line.TrimStart().Length <= 2)
            {
                Flush();
                fields = new Dictionary<string, string>();
                continue;
            }
            if (fields is null) continue;
            var colon = trimmed.IndexOf(": ", StringComparison.Ordinal);
            if (colon > 0)
                fields.TryAdd(trimmed[..colon], trimmed[(colon + 2)..].Trim());
        }
        Flush();
        var anySection = items.Any(i => i.Uid is not null);
        return anySection ? items.Where(i => i.Uid == uid).ToList() : items;
    }
}
