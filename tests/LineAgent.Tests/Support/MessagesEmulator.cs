using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Emu = MessagesEmulation;

namespace LineAgent.Tests.Support;

/// <summary>
/// The Messages.app emulator (tests/MessagesEmulator, a .NET console program) behind a wrapper script that
/// the agent runs as its osascript; it writes rows into a chat.db made from Apple's schema, like Messages does.
/// Admin commands (init, incoming, rebuild, quit, ...) run in-process; script calls run as processes.
/// </summary>
public sealed class MessagesEmulator
{
    /// <summary>The emulator, copied into the test output by the project reference.</summary>
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "MessagesEmulator.dll");

    /// <summary>The dotnet host that runs the emulator: DOTNET_HOST_PATH (set by dotnet test), else the one running the tests, else `dotnet`.</summary>
    public static string Dotnet { get; } = ResolveDotnet();

    public MessagesEmulator(string home, int macOs = 26)
    {
        Home = Path.GetFullPath(home);
        Directory.CreateDirectory(Home);
        Osascript = Path.Combine(Home, "osascript");
        File.WriteAllText(Osascript, $"#!/bin/sh\nMESSAGES_EMULATOR_HOME={Quote(Home)} exec {Quote(Dotnet)} {Quote(Dll)} \"$@\"\n");
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(Osascript, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Emu.Admin.Init(Home, macOs.ToString(System.Globalization.CultureInfo.InvariantCulture), force: true);
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
        // A test that reads line health wants the check's answer: a loaded machine can take seconds to start the emulator.
        ["Bridge:HealthWaitForViews"] = "00:00:30",
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
    public IReadOnlyList<(string Script, byte[][] Argv)> Calls() =>
        CallRecords().Select(j => (j["script"]!.GetValue<string>(),
            j["argv_b64"]!.AsArray().Select(a => Convert.FromBase64String(a!.GetValue<string>())).ToArray())).ToList();

    /// <summary>calls.ndjson as written: script, path, argv_b64, argc, pid, t.</summary>
    public IReadOnlyList<JsonObject> CallRecords()
    {
        var path = Path.Combine(Home, "calls.ndjson");
        if (!File.Exists(path))
            return [];
        return ReadShared(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
    }

    /// <summary>The emulator appends under an exclusive lock; .NET's shared lock then fails for a moment, so retry.</summary>
    private static string[] ReadShared(string path)
    {
        for (var attempt = 0; ; attempt++)
        {
            try { return File.ReadAllLines(path); }
            catch (IOException) when (attempt < 100) { Thread.Sleep(10); }
        }
    }

    /// <summary>
    /// Plays a reply arriving from <paramref name="handle"/>; returns its chat.db ROWID. With <paramref name="date"/>
    /// the row gets that (older) date but still the next ROWID, as iCloud sync back-fills old messages.
    /// </summary>
    public long Incoming(string handle, string text, string service = "iMessage", DateTimeOffset? date = null, string? guid = null) =>
        Emu.Admin.Incoming(Home, handle, text, service, date, guid);

    /// <summary>Messages quits (status prints not_running; hung calls end with -609; the next send launches it).</summary>
    public void Quit() => Emu.Admin.Quit(Home);

    public void Launch() => Emu.Admin.Launch(Home);

    /// <summary>Replaces chat.db as a rebuild/restore does (new inode, ROWIDs from 1); returns the new MAX(ROWID).</summary>
    public long Rebuild(int keep = 0, bool shuffle = false) => Emu.Admin.Rebuild(Home, keep, shuffle);

    public bool Delete(long rowId) => Emu.Admin.Delete(Home, rowId);

    /// <summary>state.json: schema, me, smsNumber, running, launches, restarts, counters.</summary>
    public JsonObject State() => JsonNode.Parse(Emu.Admin.StateJson(Home))!.AsObject();

    /// <summary>An admin command in-process, as on the command line; returns stdout, throws on a non-zero exit.</summary>
    public string Run(params string[] args)
    {
        using var stdout = new MemoryStream();
        using var stderr = new MemoryStream();
        var code = Emu.Cli.Run(args.Select(Encoding.UTF8.GetBytes).ToList(), Home, stdout, stderr);
        if (code != 0)
            throw new InvalidOperationException($"emulator {string.Join(' ', args)} failed ({code}): {Encoding.UTF8.GetString(stderr.ToArray())}");
        return Encoding.UTF8.GetString(stdout.ToArray());
    }

    /// <summary>A script call through the osascript wrapper, as the agent makes it; waits for it to end.</summary>
    public async Task<ScriptRun> ExecAsync(string scriptPath, params string[] args)
    {
        using var process = Start(scriptPath, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return new ScriptRun(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts a script call through the osascript wrapper (stdout and stderr redirected, stdin closed).</summary>
    public Process Start(string scriptPath, params string[] args)
    {
        var psi = new ProcessStartInfo(Osascript)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add(scriptPath);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        process.StandardInput.Close();
        return process;
    }

    /// <summary>A read-only connection to chat.db (no pooling: a rebuilt chat.db is a new file).</summary>
    public SqliteConnection OpenChatDb()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = ChatDb, Mode = SqliteOpenMode.ReadOnly, Pooling = false, DefaultTimeout = 10,
        }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>One row of a query on chat.db, columns joined by '|' (NULL as ''), rows by '\n'.</summary>
    public string Query(string sql)
    {
        using var connection = OpenChatDb();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        using var r = cmd.ExecuteReader();
        var rows = new List<string>();
        while (r.Read())
            rows.Add(string.Join("|", Enumerable.Range(0, r.FieldCount).Select(i => r.IsDBNull(i) ? "" : Convert.ToString(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        return string.Join("\n", rows);
    }

    public static string Utf8(byte[] b) => Encoding.UTF8.GetString(b);

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static string ResolveDotnet()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
            return host;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
            return self;
        return "dotnet";
    }
}

public sealed record ScriptRun(int ExitCode, string Stdout, string Stderr);
