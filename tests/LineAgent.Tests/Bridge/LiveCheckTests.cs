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
