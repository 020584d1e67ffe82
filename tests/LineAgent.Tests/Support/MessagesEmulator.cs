using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LineAgent.Tests.Support;

/// <summary>
/// tests/MessagesEmulator/messages_emulator.py behind a wrapper script that the agent runs as its
/// osascript; it writes rows into a chat.db made from Apple's schema, like Messages does.
/// </summary>
public sealed class MessagesEmulator
{
    public static string Script => Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "MessagesEmulator", "messages_emulator.py"));
    public const string Python = "/usr/bin/python3";

    public MessagesEmulator(string home, int macOs = 26)
    {
        Home = home;
        Directory.CreateDirectory(home);
        Osascript = Path.Combine(home, "osascript");
        File.WriteAllText(Osascript, $"#!/bin/sh\nMESSAGES_EMULATOR_HOME='{home}' exec {Python} '{Script}' \"$@\"\n");
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(Osascript, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Run("init", "--schema", macOs.ToString(), "--force");
    }

    public string Home { get; }
    public string Osascript { get; }
    public string ChatDb => Path.Combine(Home, "chat.db");

    /// <summary>Agent settings that point the bridge at this emulator.</summary>
    public Dictionary<string, string?> Settings(TimeSpan? confirmTimeout = null, TimeSpan? scriptTimeout = null) => new()
    {
        ["Agent:DryRun"] = "false",
        ["Lines:0:Id"] = "default",
        ["Lines:0:Pacing:Enabled"] = "false",
        ["Bridge:OsascriptPath"] = Osascript,
        ["Bridge:ChatDbPath"] = ChatDb,
        ["Bridge:ConfirmTimeout"] = (confirmTimeout ?? TimeSpan.FromSeconds(20)).ToString(),
        ["Bridge:ScriptTimeout"] = (scriptTimeout ?? TimeSpan.FromSeconds(20)).ToString(),
        ["Bridge:WatchDebounce"] = "00:00:00.050",
        ["Bridge:PollInterval"] = "00:00:01",
        ["Bridge:HealthCacheFor"] = "00:00:00",
        ["Resilience:RetryBaseDelay"] = "00:00:00.050",
    };

    /// <summary>Replaces control.json atomically (the emulator re-reads it on every call).</summary>
    public void Control(object control)
    {
        var temp = Path.Combine(Home, $"control.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(temp, JsonSerializer.Serialize(control));
        File.Move(temp, Path.Combine(Home, "control.json"), overwrite: true);
    }

    /// <summary>The recorded calls: script name and argv exactly as the process received them.</summary>
    public IReadOnlyList<(string Script, byte[][] Argv)> Calls()
    {
        var path = Path.Combine(Home, "calls.ndjson");
        if (!File.Exists(path))
            return [];
        return ReadShared(path).Where(l => l.Length > 0).Select(l =>
        {
            var j = JsonNode.Parse(l)!;
            return (j["script"]!.GetValue<string>(), j["argv_b64"]!.AsArray().Select(a => Convert.FromBase64String(a!.GetValue<string>())).ToArray());
        }).ToList();
    }

    /// <summary>The emulator appends under an exclusive flock; .NET's shared lock then fails for a moment, so retry.</summary>
    private static string[] ReadShared(string path)
    {
        for (var attempt = 0; ; attempt++)
        {
            try { return File.ReadAllLines(path); }
            catch (IOException) when (attempt < 100) { Thread.Sleep(10); }
        }
    }

    /// <summary>Plays a reply arriving from <paramref name="handle"/>; returns its chat.db ROWID.</summary>
    public long Incoming(string handle, string text, string service = "iMessage") =>
        long.Parse(Run("incoming", handle, text, "--service", service).Trim());

    public string Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["MESSAGES_EMULATOR_HOME"] = Home;
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"emulator {string.Join(' ', args)} failed ({p.ExitCode}): {error}");
        return output;
    }

    public static string Utf8(byte[] b) => Encoding.UTF8.GetString(b);
}
