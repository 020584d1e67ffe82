using System.Diagnostics;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Emulator;

/// <summary>
/// A fresh emulator home (with a space in its path on purpose: paths must survive quoting and SQLite URIs) and
/// placeholder script files; script calls go through the osascript wrapper as the agent makes them.
/// </summary>
public abstract class EmulatorTest(int macOs)
{
    protected const string R = "+12025550123";

    private TempDir _dir = null!;

    protected int MacOs => macOs;
    protected MessagesEmulator Emu { get; private set; } = null!;
    protected string ScriptsDir { get; private set; } = null!;
    protected string SendScript => Path.Combine(ScriptsDir, "send.applescript");
    protected string StatusScript => Path.Combine(ScriptsDir, "status.applescript");
    protected string RestartScript => Path.Combine(ScriptsDir, "restart-messages.applescript");

    [SetUp]
    public void CreateEmulator()
    {
        _dir = new TempDir();
        Emu = new MessagesEmulator(_dir.File("messages home"), macOs);
        ScriptsDir = _dir.File("Scripts");
        Directory.CreateDirectory(ScriptsDir);
        foreach (var name in new[] { "send", "status", "restart-messages" })
            File.WriteAllText(Path.Combine(ScriptsDir, $"{name}.applescript"), $"-- placeholder for {name}.applescript\n");
    }

    [TearDown]
    public void DeleteEmulator() => _dir.Dispose();

    protected string TempFile(string name) => _dir.File(name);

    protected Task<ScriptRun> SendAsync(params string[] args) => Emu.ExecAsync(SendScript, args);

    protected Task<ScriptRun> StatusAsync() => Emu.ExecAsync(StatusScript);

    protected static async Task<(ScriptRun Run, TimeSpan Elapsed)> TimedAsync(Func<Task<ScriptRun>> call)
    {
        var clock = Stopwatch.StartNew();
        var run = await call();
        return (run, clock.Elapsed);
    }

    protected long LastRowId() => long.Parse(Emu.Query("SELECT COALESCE(MAX(ROWID), 0) FROM message"));

    /// <summary>osascript's error line for a script.</summary>
    protected static string ExecutionError(string script, string message, int number) => $"{script}: execution error: {message} ({number})\n";

    /// <summary>Polls a query until it prints <paramref name="expected"/> (deadline: 15 s).</summary>
    protected async Task WaitForAsync(string sql, string expected, string what, TimeSpan? timeout = null)
    {
        var last = "";
        var clock = Stopwatch.StartNew();
        while ((last = Emu.Query(sql)) != expected)
        {
            if (clock.Elapsed > (timeout ?? TimeSpan.FromSeconds(15)))
                Assert.Fail($"{what}: waited for [{expected}], last saw [{last}]");
            await Task.Delay(20);
        }
    }

    protected long Counter(string kind) =>
        Emu.State()["counters"]?[kind]?.GetValue<long>() ?? 0;

    protected void AssertNoBackgroundErrors()
    {
        var log = Path.Combine(Emu.Home, "emulator-errors.log");
        Assert.That(File.Exists(log) ? File.ReadAllText(log) : "", Is.Empty, "background (timeline) errors");
    }
}
