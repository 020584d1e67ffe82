using System.Text;
using LineAgent.Bridge;
using LineAgent.Bridge.Osascript;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Bridge;

public sealed class OsascriptRunnerTests
{
    private TempDir _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDir();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private string Fake(string body)
    {
        var path = _dir.File($"fake-{Guid.NewGuid():N}.sh");
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    [TestCase(-1728, OsaErrorKind.CantGet)]
    [TestCase(-1743, OsaErrorKind.NotAuthorized)]
    [TestCase(-1719, OsaErrorKind.AccountMissing)]
    [TestCase(-2753, OsaErrorKind.AccountMissing)]
    [TestCase(-1712, OsaErrorKind.AppleEventTimeout)]
    [TestCase(-1700, OsaErrorKind.BadType)]
    [TestCase(-600, OsaErrorKind.NotRunning)]
    [TestCase(-609, OsaErrorKind.NotRunning)]
    [TestCase(-10000, OsaErrorKind.Other)]
    public async Task Run_ShouldTypeApplesRawErrorNumbers(int code, OsaErrorKind kind)
    {
        var fake = Fake($"echo \"$1: execution error: Messages got an error: something ({code})\" >&2; exit 1");
        var result = await new OsascriptRunner(fake, TimeSpan.FromSeconds(10)).RunAsync("/x/status.applescript", []);

        Assert.That(result.ErrorKind, Is.EqualTo(kind));
        Assert.That(result.ErrorNumber, Is.EqualTo(code));
        Assert.That(result.RawErrorNumber, Is.EqualTo(code));
        Assert.That(result.Step, Is.EqualTo(ScriptStep.None));
        Assert.That(result.ErrorText, Is.EqualTo($"Messages got an error: something ({code})"));
        Assert.That(result.ReachedSend, Is.False);
    }

    /// <summary>send.applescript re-raises each step's error with its own number and Apple's raw one in the text.</summary>
    [TestCase(1001, -1719, ScriptStep.Account, OsaErrorKind.AccountMissing)]
    [TestCase(1001, -1728, ScriptStep.Account, OsaErrorKind.AccountMissing)]
    [TestCase(1002, -1728, ScriptStep.Participant, OsaErrorKind.RecipientUnresolvable)]
    [TestCase(1003, -10000, ScriptStep.Send, OsaErrorKind.SendRefused)]
    [TestCase(1001, -1743, ScriptStep.Account, OsaErrorKind.NotAuthorized)]
    [TestCase(1002, -1712, ScriptStep.Participant, OsaErrorKind.AppleEventTimeout)]
    [TestCase(1002, -609, ScriptStep.Participant, OsaErrorKind.NotRunning)]
    [TestCase(1001, -600, ScriptStep.Account, OsaErrorKind.NotRunning)]
    [TestCase(1001, -1700, ScriptStep.Account, OsaErrorKind.BadType)]
    public async Task Run_ShouldTypeStepErrors_ByTheRawNumberFirst(int step, int raw, ScriptStep expectedStep, OsaErrorKind kind)
    {
        var fake = Fake($"echo \"$1: execution error: step: Messages got an error: Can’t get it (1). Invalid index. ({raw}) ({step})\" >&2; exit 1");
        var result = await new OsascriptRunner(fake, TimeSpan.FromSeconds(10)).RunAsync("/x/send.applescript", ["iMessage", "+1", "t"]);

        Assert.That(result.Step, Is.EqualTo(expectedStep));
        Assert.That(result.RawErrorNumber, Is.EqualTo(raw));
        Assert.That(result.ErrorKind, Is.EqualTo(kind));
    }

    [Test]
    public async Task Run_ShouldKillTheWholeProcessTree_AtTheTimeout()
    {
        var pidFile = _dir.File("child.pid");
        var fake = Fake($"echo LINEAGENT:SENDING >&2; sleep 300 & echo $! > '{pidFile}'; wait");
        var clock = System.Diagnostics.Stopwatch.StartNew();

        // Long enough for a loaded machine to start sh, write the marker and the pid file before the kill.
        var result = await new OsascriptRunner(fake, TimeSpan.FromSeconds(3)).RunAsync("/x/send.applescript", []);

        Assert.That(result.TimedOut, Is.True);
        Assert.That(result.ErrorKind, Is.EqualTo(OsaErrorKind.TimedOut));
        Assert.That(result.ReachedSend, Is.True, "stderr written before the kill is kept");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        var child = int.Parse(File.ReadAllText(pidFile).Trim());
        await Eventually.TrueAsync(() => !Directory.Exists($"/proc/{child}") || File.ReadAllText($"/proc/{child}/stat").Contains(") Z "),
            "the grandchild killed");
    }

    [Test]
    public async Task Run_ShouldNotTakeAnUnreadStderrAsProofThatNothingWasSent()
    {
        // The script fails with -609 and exits, but a process it left behind (outside the tree a timeout kills) holds
        // stderr open past the drain: whether the marker was written is unknown, so the send may have gone out.
        var pidFile = _dir.File("holder.pid");
        var fake = Fake($"sleep 300 & echo $! > '{pidFile}'; echo 'execution error: Connection is invalid. (-609)' >&2; exit 1");
        try
        {
            var result = await new OsascriptRunner(fake, TimeSpan.FromSeconds(60)).RunAsync("/x/send.applescript", []);

            Assert.That(result.TimedOut, Is.False);
            Assert.That(result.StderrComplete, Is.False, "stderr was still open after the drain");
            Assert.That(result.ReachedSend, Is.True, "no marker seen is not proof when stderr was not read to its end");
        }
        finally
        {
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
                try { System.Diagnostics.Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        }
    }

    [Test]
    public async Task Send_ShouldNeitherRetryNorCallItProvenNotSent_WhenStderrWasNotReadToItsEnd()
    {
        // Every call is counted; each leaves a process holding stderr, reports -609 and fails.
        var pidFile = _dir.File("holders.pid");
        var calls = _dir.File("calls.log");
        var fake = Fake($"echo \"$1\" >> '{calls}'; sleep 300 & echo $! >> '{pidFile}'; echo 'execution error: Connection is invalid. (-609)' >&2; exit 1");
        try
        {
            var scripts = new MessagesScripts(new OsascriptRunner(fake, TimeSpan.FromSeconds(60)), _dir.Path);

            var result = await scripts.SendAsync("iMessage", "+12025550123", "hi", CancellationToken.None);

            Assert.That(result.Accepted, Is.False);
            Assert.That(result.ProvenNotSent, Is.False, "it may have reached send: the message must not be resent or called unsent");
            Assert.That((result.Attempts, result.RestartedMessages), Is.EqualTo((1, false)));
            Assert.That(File.ReadAllLines(calls), Has.Length.EqualTo(1), "osascript ran once");
        }
        finally
        {
            foreach (var line in File.Exists(pidFile) ? File.ReadAllLines(pidFile) : [])
                if (int.TryParse(line.Trim(), out var pid))
                    try { System.Diagnostics.Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        }
    }

    [Test]
    public async Task Run_ShouldReportAMissingOsascript_AsLaunchFailed()
    {
        var result = await new OsascriptRunner("/nonexistent/osascript", TimeSpan.FromSeconds(5)).RunAsync("/x/status.applescript", []);
        Assert.That(result.ErrorKind, Is.EqualTo(OsaErrorKind.LaunchFailed));
        Assert.That(result.ErrorText, Does.Contain("/nonexistent/osascript"));
    }

    [Test]
    public void StatusOutput_ShouldParseIntoAccounts()
    {
        var accounts = MessagesScripts.ParseAccounts("iMessage\tE:me@icloud.com\ttrue\tconnected\nSMS\tP:+15550000000\tfalse\tdisconnected\n\ngarbage\n");
        Assert.That(accounts, Has.Count.EqualTo(2));
        Assert.That(accounts[0].IsConnected, Is.True);
        Assert.That(accounts[1], Is.EqualTo(new MessagesAccount("SMS", "P:+15550000000", false, "disconnected")));
    }

    [Test]
    public void SendScript_ShouldTakeItsInputsOnlyFromArgv()
    {
        var script = string.Join("\n", File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Scripts", "send.applescript"))
            .Where(l => !l.TrimStart().StartsWith("--", StringComparison.Ordinal)));
        Assert.That(script, Does.Contain("on run argv"));
        Assert.That(script, Does.Contain("participant recipientId of targetAccount"));
        Assert.That(script, Does.Contain("log \"LINEAGENT:SENDING\""));
        Assert.That(script, Does.Not.Contain("chat id"), "a first message to a new number cannot use chat id");
        Assert.That(script, Does.Not.Contain("service type = any"));
        foreach (var step in new[] { "number 1001", "number 1002", "number 1003" })
            Assert.That(script, Does.Contain(step), "each step raises its own number");
        Assert.That(script.IndexOf("number 1002", StringComparison.Ordinal), Is.LessThan(script.IndexOf("LINEAGENT:SENDING", StringComparison.Ordinal)),
            "the marker comes after the participant step");
    }

    /// <summary>A script without its comment lines.</summary>
    private static string ScriptText(string name) => string.Join("\n", File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Scripts", name))
        .Where(l => !l.TrimStart().StartsWith("--", StringComparison.Ordinal)));

    /// <summary>Apple events wait 120 s by default: each script says its own limit, and the agent's hard kill comes later.</summary>
    [Test]
    public void Scripts_ShouldTimeOutThemselves_BeforeTheAgentKillsThem()
    {
        static int Seconds(string script, string pattern) =>
            int.Parse(System.Text.RegularExpressions.Regex.Match(script, pattern).Groups[1].Value);

        Assert.That(TimeSpan.FromSeconds(Seconds(ScriptText(MessagesScripts.Send), @"with timeout of (\d+) seconds")), Is.LessThan(new BridgeOptions().ScriptTimeout));
        Assert.That(new BridgeOptions().ScriptTimeout, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(150)), "imsg kills at 150 s; a consent dialog holds the first send");
        Assert.That(TimeSpan.FromSeconds(Seconds(ScriptText(MessagesScripts.Status), @"with timeout of (\d+) seconds")), Is.LessThan(MessagesScripts.StatusHardTimeout));
        Assert.That(TimeSpan.FromSeconds(Seconds(ScriptText(MessagesScripts.Restart), @"\(current date\) \+ (\d+)")), Is.LessThan(MessagesScripts.RestartHardTimeout));
    }

    [Test]
    public void StatusScript_ShouldNotLaunchMessages_WhenItIsNotRunning()
    {
        var script = ScriptText(MessagesScripts.Status);
        var check = script.IndexOf("if application \"Messages\" is not running then return \"not_running\"", StringComparison.Ordinal);
        Assert.That(check, Is.GreaterThan(0));
        Assert.That(check, Is.LessThan(script.IndexOf("tell application \"Messages\"", StringComparison.Ordinal)), "checked before any tell, which would launch it");
    }

    [Test]
    public void RestartScript_ShouldKillMessagesByPid_AndWaitForTheAccount()
    {
        var script = ScriptText(MessagesScripts.Restart);
        Assert.That(script, Does.Contain("pgrep -x Messages").And.Contain("kill -9"));
        Assert.That(script, Does.Not.Contain("to quit"), "a hung Messages does not answer quit either");
        Assert.That(script, Does.Contain("connection status of (1st account whose service type = iMessage)"));
        Assert.That(script, Does.Not.Match(@"delay 2\s*$"));
    }

    /// <summary>
    /// 300 hostile contents go through the real send path (ArgumentList, no shell) and each arrives at
    /// the emulator as exactly the same argv bytes.
    /// </summary>
    [Test]
    public async Task Send_ShouldDeliverEveryContentByteForByte_ToTheEmulatorArgv()
    {
        var messages = new MessagesEmulator(_dir.File("messages"));
        messages.Control(new { recordOnly = true });
        var scripts = new MessagesScripts(new OsascriptRunner(messages.Osascript, TimeSpan.FromSeconds(30)),
            new BridgeOptions().ResolveScriptsDir());
        // 300, not 1,000: the emulator is a .NET process per call now (about 75 ms of CPU each, mostly runtime
        // start-up, against about 45 ms for the Python emulator it replaced), and 1,000 calls took 54 s on a
        // 2-core machine. The hand-picked contents come first in HostileContents, so every one of them is still
        // sent; the rest are random mixes of the same pieces.
        var contents = HostileContents(300);

        await Parallel.ForEachAsync(contents, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (text, ct) =>
        {
            var result = await scripts.SendAsync("iMessage", "+12025550123", text, ct);
            Assert.That(result.Accepted, Is.True, result.Last.ErrorText);
        });

        var calls = messages.Calls();
        Assert.That(calls, Has.Count.EqualTo(contents.Count));
        Assert.That(calls.All(c => c.Script == "send.applescript" && c.Argv.Length == 3), Is.True);
        Assert.That(calls.All(c => MessagesEmulator.Utf8(c.Argv[0]) == "iMessage" && MessagesEmulator.Utf8(c.Argv[1]) == "+12025550123"), Is.True);
        var expected = contents.Select(t => Convert.ToBase64String(Encoding.UTF8.GetBytes(t))).Order().ToList();
        var received = calls.Select(c => Convert.ToBase64String(c.Argv[2])).Order().ToList();
        Assert.That(received, Is.EqualTo(expected));
    }

    internal static List<string> HostileContents(int count)
    {
        var random = new Random(20261126);
        string[] pieces =
        [
            "\"", "'", "\\", "\\\"", "\" & do shell script \"touch /tmp/pwned\" & \"", "'; rm -rf ~; '", "$(id)", "`id`", "%s %n",
            "\n", "\r", "\r\n", "\t", "  ", "😀", "👨‍👩‍👧‍👦", "\u200F", "\u200E", "\u202E", "مرحبا", "שלום", "日本語", "é", "e\u0301", "\uFFFC",
            "{{firstName}}", "&amp;", "<b>", "--", "#", "!", "~/Library", "-e", "--help", "¬", "«data utxt0041»", "tell application \"Finder\"",
        ];
        var list = new List<string>(count)
        {
            "\" & do shell script \"say hacked\" & \"",
            "line one\nline two\r\nline three\rend",
            "\ttabbed\ttext\t",
            new string('x', 10_000),
            string.Concat(Enumerable.Repeat("😀", 5_000)),
            string.Concat(Enumerable.Repeat("\\\"'", 3_333)) + "!",
            "-", "--", "-e", " leading and trailing spaces ",
        };
        while (list.Count < count)
        {
            var sb = new StringBuilder();
            var n = random.Next(1, 40);
            for (var i = 0; i < n; i++)
                sb.Append(pieces[random.Next(pieces.Length)]);
            if (random.Next(50) == 0)
                sb.Append(new string('z', 10_000 - sb.Length > 0 ? 10_000 - sb.Length : 0));
            list.Add(sb.ToString());
        }
        return list;
    }
}
