using LineAgent.Tests.Support;

namespace LineAgent.Tests.Bridge;

/// <summary>
/// `lineagent doctor --live ADDRESS`, the five-minute proof for a Mac owner, run here against the Messages
/// emulator: through a running agent, and straight through the bridge when no agent answers.
/// </summary>
public sealed class LiveCheckTests
{
    private static readonly string[] Stages = ["script accepted", "chat.db row written", "sent", "delivered"];

    internal static string[] BridgeArgs(MessagesEmulator messages) =>
    [
        "--Agent:DryRun=false", "--Lines:0:Id=default", "--Lines:0:Pacing:Enabled=false",
        $"--Bridge:OsascriptPath={messages.Osascript}", $"--Bridge:ChatDbPath={messages.ChatDb}",
        "--Bridge:WatchDebounce=00:00:00.050", "--Bridge:PollInterval=00:00:01", "--Bridge:HealthCacheFor=00:00:00",
    ];

    [Test]
    public async Task LiveCheck_ThroughTheRunningAgent_ShouldTimeEachStage_AndSendExactlyOnce()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { confirmDelayMs = 150, deliverDelayMs = 150 });
        using var agent = await AgentProcess.StartAsync(dir.File("data"), args: BridgeArgs(messages));

        var run = await Programs.LineAgentAsync(["doctor", "--live", "+12025550150", "--data-dir", dir.File("data"),
            "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}", .. BridgeArgs(messages)]);
        TestContext.Out.WriteLine(run.Stdout);

        Assert.That(run.Stdout, Does.Contain("path: through the running agent"));
        foreach (var stage in Stages)
            Assert.That(run.Lines, Has.Some.Match($@"^\[ ok \] {stage}\s+\d+\.\d\d s"), stage);
        Assert.That(run.Lines, Has.Some.Match(@"^\[ ok \] availability\s+iMessage available"));
        Assert.That(run.Stdout, Does.Contain("Result: every stage passed."));
        var sends = messages.Calls().Where(c => c.Script == "send.applescript").ToList();
        Assert.That(sends, Has.Count.EqualTo(1));
        Assert.That(sends[0].Argv.Select(MessagesEmulator.Utf8).Take(2), Is.EqualTo(new[] { "iMessage", "+12025550150" }));
    }

    /// <summary>
    /// An address without iMessage, through an agent whose line falls back to SMS: the send-now answer is the SMS, and its
    /// stages were printed as the iMessage's, every one ok (probe H). The report follows the iMessage, says it failed, and
    /// names the SMS that went instead.
    /// </summary>
    [Test]
    public async Task LiveCheck_ThroughTheAgent_ToAnAddressWithoutIMessage_ShouldReportTheIMessage_AndNameTheFallback()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { confirmDelayMs = 150, deliverDelayMs = 150, nonImessage = new[] { "+12025550190" } });
        using var agent = await AgentProcess.StartAsync(dir.File("data"), args: BridgeArgs(messages));

        var run = await Programs.LineAgentAsync(["doctor", "--live", "+12025550190", "--data-dir", dir.File("data"),
            "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}", .. BridgeArgs(messages)]);
        TestContext.Out.WriteLine(run.Stdout);

        Assert.That(run.ExitCode, Is.EqualTo(1));
        Assert.That(run.Lines, Has.Some.Match(@"^\[FAIL\] send\s+imessage_unavailable"));
        Assert.That(run.Lines, Has.Some.Match(@"^fallback: the iMessage failed and the line tried the text again as SMS \(msg_"));
        Assert.That(run.Lines, Has.None.Match(@"^\[ ok \] (sent|delivered)"), "the SMS's stages are not the iMessage's");
    }

    [Test]
    public async Task LiveCheck_WithoutAnAgent_ShouldGoStraightThroughTheBridge()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { confirmDelayMs = 150, deliverDelayMs = 150 });

        var run = await Programs.LineAgentAsync(["doctor", "--live", "me@icloud.com", "--data-dir", dir.File("data"), "--url", "http://127.0.0.1:9",
            .. BridgeArgs(messages)]);
        TestContext.Out.WriteLine(run.Stdout);

        Assert.That(run.Stdout, Does.Contain("path: straight through the bridge"));
        Assert.That(run.Lines, Has.Some.Match(@"^\[ ok \] permissions\s+Messages reachable, Automation granted, Full Disk Access granted, iMessage account signed_in"));
        foreach (var stage in Stages)
            Assert.That(run.Lines, Has.Some.Match($@"^\[ ok \] {stage}\s+\d+\.\d\d s"), stage);
        Assert.That(run.Lines, Has.Some.Match(@"^\[ ok \] chat\.db row written .*ROWID \d+, iMessage"));
        Assert.That(messages.Calls().Count(c => c.Script == "send.applescript"), Is.EqualTo(1));
    }

    [Test]
    public async Task LiveCheck_ShouldSayWhichStageFailed_AndNameAppleError()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { unresolvable = new[] { "+12025550151" } });

        var run = await Programs.LineAgentAsync(["doctor", "--live", "+12025550151", "--data-dir", dir.File("data"), "--url", "http://127.0.0.1:9",
            .. BridgeArgs(messages)]);
        TestContext.Out.WriteLine(run.Stdout);

        Assert.That(run.ExitCode, Is.EqualTo(1));
        Assert.That(run.Lines, Has.Some.Match(@"^\[FAIL\] script accepted\s+RecipientUnresolvable \(step Participant, Apple error -1728\)"));
    }

    /// <summary>
    /// Messages simply quit (a send launches it, README): a warning, and the accounts, which nobody could see, are "not known"
    /// warnings. Before, three required checks failed, "no SMS account in Messages" with the iPhone's setting as its fix (probe H).
    /// </summary>
    [Test]
    public async Task Doctor_WithMessagesQuit_ShouldWarn_AndNotFailWhatItCannotKnow()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Quit();
        var run = await Programs.LineAgentAsync(["doctor", "--data-dir", dir.File("data"), "--url", "http://127.0.0.1:9", .. BridgeArgs(messages)]);
        TestContext.Out.WriteLine(run.Stdout);
        Assert.That(run.Lines, Has.Some.StartsWith("[warn] Messages running: Messages is not running"));
        Assert.That(run.Lines, Has.Some.StartsWith("[warn] iMessage signed in: not known (unknown until Messages answers: it is not running)"));
        Assert.That(run.Lines, Has.Some.StartsWith("[warn] SMS relay: not known"));
        Assert.That(run.Lines.Where(l => l.StartsWith("[fail]", StringComparison.Ordinal)), Has.None.Contains("Messages running").And.None.Contains("SMS relay")
            .And.None.Contains("iMessage signed in"));
        Assert.That(messages.State()["launches"]!.GetValue<int>(), Is.Zero, "doctor does not launch Messages");
    }

    [Test]
    public async Task Doctor_WithoutLive_ShouldSendNothing()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        var run = await Programs.LineAgentAsync(["doctor", "--data-dir", dir.File("data"), "--url", "http://127.0.0.1:9", .. BridgeArgs(messages)]);
        Assert.That(run.Stdout, Does.Not.Contain("live check"));
        Assert.That(messages.Calls().Count(c => c.Script == "send.applescript"), Is.Zero);
    }
}
