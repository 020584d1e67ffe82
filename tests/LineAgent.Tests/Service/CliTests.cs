using LineAgent.Tests.Support;

namespace LineAgent.Tests.Service;

/// <summary>`lineagent` as a command against a running agent (its own process).</summary>
public sealed class CliTests
{
    /// <summary>
    /// An agent that takes a connection and never answers (hung, or stopped with SIGSTOP): one line after the client's timeout
    /// (Api:SendWaitSeconds + twice Bridge:HealthWaitForViews + 30 s), saying a send may have been stored. Before: an unhandled
    /// TaskCanceledException after a fixed 60 s and exit 134, also under a send waiting longer than that (probe I).
    /// </summary>
    [Test]
    public async Task AnAgentThatNeverAnswers_ShouldGetOneLineAfterTheTimeout_NotACrash()
    {
        using var dir = new TempDir();
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
        var held = new List<System.Net.Sockets.TcpClient>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try { while (true) held.Add(await silent.AcceptTcpClientAsync(stop.Token)); }
            catch (OperationCanceledException) { }
        });
        var run = await Programs.LineAgentAsync(["status", "--data-dir", dir.Path, "--url", $"http://127.0.0.1:{port}/", "--Api:Token=abcdefabcdefabcdef",
            "--Api:SendWaitSeconds=0", "--Bridge:HealthWaitForViews=00:00:00"]);
        await stop.CancelAsync();
        await accepting;
        held.ForEach(c => c.Dispose());

        Assert.That(run.ExitCode, Is.EqualTo(1), run.Stderr);
        Assert.That(run.Stderr, Does.Contain($"did not answer within {LineAgent.Cli.AgentClient.TimeoutMargin.TotalSeconds:0} s")
            .And.Contain("lineagent list").And.Not.Contain("Unhandled exception").And.Not.Contain("   at "));
    }

    /// <summary>
    /// A command that only asks the running agent takes only the settings it reads itself: `send --Agent:DryRun=true` was taken
    /// and meant nothing to the running agent, which sent the message live (probe I); the hint for an unknown option suggested it.
    /// </summary>
    [Test]
    public async Task ACommandThatAsksTheAgent_ShouldRefuseTheAgentsOwnSettings()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        string[] Common() => ["--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}"];

        var sent = await Programs.LineAgentAsync(["send", "+12025550123", "I asked for a dry run", "--Agent:DryRun=true", .. Common()]);
        Assert.That(sent.ExitCode, Is.EqualTo(1), sent.Stdout);
        Assert.That(sent.Stderr, Does.StartWith("lineagent send: '--Agent:DryRun=true' is a setting of the agent itself").And.Contain("--Api:Token=..."));
        var unknown = await Programs.LineAgentAsync(["send", "+12025550123", "x", "--dry-run", .. Common()]);
        Assert.That(unknown.Stderr, Does.Contain("unknown option '--dry-run'").And.Not.Contain("--Agent:DryRun=true"));
        using var api = agent.Api();
        Assert.That((await api.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty, "nothing was sent");

        var list = await Programs.LineAgentAsync(["list", "--Api:SendWaitSeconds=5", .. Common()]);
        Assert.That(list.ExitCode, Is.Zero, list.Stderr + "(a setting the client reads itself)");
    }

    /// <summary>
    /// An agent started with `--urls` on another port (here a port the system picked): the commands find it through its data
    /// dir without --url; when it has stopped, they no longer point at it. Before, `status` said nothing answered at 5117 and
    /// advised starting one, which met the lock (probe I).
    /// </summary>
    [Test]
    public async Task TheCommands_ShouldFindAnAgentStartedOnAnotherPort_ThroughItsDataDir()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        // Written once the host has started, which is a moment after it first answers.
        await Eventually.TrueAsync(() => File.Exists(Path.Combine(dir.Path, "agent-url")), "the agent wrote its address");
        Assert.That(File.ReadAllText(Path.Combine(dir.Path, "agent-url")).Trim(), Is.EqualTo(agent.BaseAddress.ToString().TrimEnd('/')));

        var status = await Programs.LineAgentAsync(["status", "--data-dir", dir.Path, $"--Api:Token={agent.Token}"]);
        Assert.That(status.ExitCode, Is.Zero, status.Stderr);
        Assert.That(status.Stdout, Does.Contain($"at {agent.BaseAddress.ToString().TrimEnd('/')}"));

        Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        Assert.That(File.Exists(Path.Combine(dir.Path, "agent-url")), Is.False, "removed when the agent stops");
    }

    /// <summary>An --at that has already passed is due at once: the CLI says so (it was sent without a word: probe I).</summary>
    [Test]
    public async Task SendAtATimeAlreadyPast_ShouldSayItWasDueAtOnce()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        string[] Common() => ["--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}"];

        var past = await Programs.LineAgentAsync(["send", "+12025550123", "Hello", "--at", DateTimeOffset.UtcNow.AddMinutes(-5).ToString("O"), .. Common()]);
        Assert.That(past.ExitCode, Is.Zero, past.Stderr);
        Assert.That(past.Stderr, Does.Match(@"note: --at \S+ had already passed \(5 min before the agent took it\): it was due at once\."));
        Assert.That(past.Stdout, Does.Match(@"^msg_\w+\s+sent\s+"));

        var future = await Programs.LineAgentAsync(["send", "+12025550123", "Later", "--at", DateTimeOffset.UtcNow.AddHours(1).ToString("O"), .. Common()]);
        Assert.That((future.ExitCode, future.Stderr), Is.EqualTo((0, "")));
    }

    [Test]
    public async Task SendListStatusCancel_ShouldWorkAgainstTheRunningAgent()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        string[] Common() => ["--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}"];

        var sent = await Programs.LineAgentAsync(["send", "+12025550123", "Hello from the CLI", .. Common()]);
        Assert.That(sent.ExitCode, Is.Zero, sent.Stderr);
        Assert.That(sent.Stdout, Does.Match(@"^msg_\w+\s+sent\s+imessage \+12025550123 at "));

        var later = await Programs.LineAgentAsync(["send", "ana@example.com", "See you", "--at", DateTimeOffset.UtcNow.AddHours(3).ToString("O"), .. Common()]);
        Assert.That(later.ExitCode, Is.Zero, later.Stderr);
        Assert.That(later.Stdout, Does.Match(@"^msg_\w+\s+scheduled\s+email\s+ana@example.com for "));
        var laterId = later.Stdout.Split(' ')[0];

        var list = await Programs.LineAgentAsync(["list", .. Common()]);
        Assert.That(list.ExitCode, Is.Zero, list.Stderr);
        Assert.That(list.Lines, Has.Length.EqualTo(2));
        Assert.That(list.Lines[0], Does.StartWith(laterId), "newest first");

        var filtered = await Programs.LineAgentAsync(["list", "--status", "sent", .. Common()]);
        Assert.That(filtered.Lines.Single(), Does.Contain("Hello from the CLI"));
        var json = await Programs.LineAgentAsync(["list", "--status", "sent", "--json", .. Common()]);
        Assert.That(json.Stdout, Does.Contain("\"recipientPhone\":\"+12025550123\"").And.Not.Contain("\\u002B"), "the API's JSON as it is");
        var none = await Programs.LineAgentAsync(["list", "--status", "failed", .. Common()]);
        Assert.That((none.ExitCode, none.Stdout, none.Stderr.Trim()), Is.EqualTo((0, "", "No messages match.")));
        var badLimit = await Programs.LineAgentAsync(["list", "--limit", "abc", .. Common()]);
        Assert.That(badLimit.ExitCode, Is.Not.Zero);
        Assert.That(badLimit.Stderr, Does.Contain("--limit takes a number from 1 to 500; got 'abc'").And.Not.Contain("System.Int32"));
        // The error and where to look, not the whole help after it (new-user pass).
        Assert.That(badLimit.Stderr.Trim().Split('\n'), Is.EqualTo(new[] { "--limit takes a number from 1 to 500; got 'abc'.", "lineagent list --help lists what it takes." }),
            badLimit.Stderr + badLimit.Stdout);
        Assert.That(badLimit.Stdout, Does.Not.Contain("Usage:"));
        var listHelp = await Programs.LineAgentAsync(["list", "--help"]);
        Assert.That(listHelp.Stdout, Does.Contain("cancelled, received (comma-separated)"));

        var status = await Programs.LineAgentAsync(["status", .. Common()]);
        Assert.That(status.ExitCode, Is.Zero, status.Stderr);
        Assert.That(status.Stdout, Does.Contain("DRY RUN").And.Contain("line default").And.Contain("scheduled 1,").And.Contain("sent today 1"));

        var cancel = await Programs.LineAgentAsync(["cancel", laterId, .. Common()]);
        Assert.That(cancel.ExitCode, Is.Zero, cancel.Stderr);
        Assert.That(cancel.Stdout, Does.Contain("cancelled"));
        var again = await Programs.LineAgentAsync(["cancel", laterId, .. Common()]);
        Assert.That(again.ExitCode, Is.EqualTo(1));
        Assert.That(again.Stderr, Does.Contain("409 not_cancellable"));

        var bad = await Programs.LineAgentAsync(["send", "12", "x", .. Common()]);
        Assert.That(bad.ExitCode, Is.EqualTo(1));
        Assert.That(bad.Stderr, Does.Contain("400 invalid_recipient").And.Not.Contain("recipientPhone"));
        var noZone = await Programs.LineAgentAsync(["send", "+12025550123", "x", "--at", "2030-01-01T09:00:00", .. Common()]);
        Assert.That(noZone.ExitCode, Is.EqualTo(1));
        Assert.That(noZone.Stderr, Does.Contain("--at").And.Contain("--time-zone").And.Not.Contain("scheduledAt").And.Not.Contain("timeZone"),
            "the CLI's problems name its options, not the API's fields");

        var noToken = await Programs.LineAgentAsync("token", "--data-dir", dir.Path);
        Assert.That((noToken.ExitCode, noToken.Stderr), Is.EqualTo((1, $"No token yet. The agent writes it when it first starts: {LineAgent.Cli.AgentCli.StartAdvice}.\n")),
            "this agent got its token from configuration, so its data dir has none");
        var token = await Programs.LineAgentAsync("token", "--data-dir", dir.Path, $"--Api:Token={agent.Token}");
        Assert.That(token.Stdout.Trim(), Is.EqualTo(agent.Token));
    }

    /// <summary>
    /// A reply is written by a stranger: its ESC, BEL, C1 controls and bidi override must not reach the operator's terminal as
    /// commands (an OSC 8 link hiding its target, a retitled window, reversed text). They print as \uXXXX; --json keeps
    /// the same characters (as JSON escapes).
    /// </summary>
    [Test]
    public async Task List_ShouldNotPrintTheControlCharactersOfAReply()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        var bridge = Bridge.LiveCheckTests.BridgeArgs(messages);
        using var agent = await AgentProcess.StartAsync(dir.File("data"), args: bridge);
        string[] Common() => ["--data-dir", dir.File("data"), "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}"];
        using var api = agent.Api();
        await (await api.SendMessageAsync(new { content = "Are you in?", recipientPhone = "+12025550304" })).ExpectAsync(System.Net.HttpStatusCode.Created);
        const string reply = "hi \u001b]8;;http://e.example/\u0007x\u001b]8;;\u0007 \u202Eevil\u009b2J";
        messages.Incoming("+12025550304", reply);
        await Eventually.TrueAsync(async () => (await Programs.LineAgentAsync(["list", "--status", "received", .. Common()])).Stdout.Contains("evil"),
            "the reply is listed", TimeSpan.FromSeconds(30));

        var list = await Programs.LineAgentAsync(["list", "--status", "received", .. Common()]);
        Assert.That(list.ExitCode, Is.Zero, list.Stderr);
        Assert.That(list.Stdout.Where(c => c is '\u001b' or '\u0007' or '\r' or '\u202E' or '\u009B'), Is.Empty, list.Stdout);
        Assert.That(list.Stdout, Does.Contain(@"""hi \u001B]8;;http://e.example/\u0007x\u001B]8;;\u0007 \u202Eevil\u009B2J"""));
        var json = await Programs.LineAgentAsync(["list", "--status", "received", "--json", .. Common()]);
        Assert.That(json.Stdout.Where(c => c is '\u001b' or '\u0007' or '\r' or '\u202E' or '\u009B'), Is.Empty, json.Stdout);
        var content = System.Text.Json.Nodes.JsonNode.Parse(json.Stdout)!["items"]!.AsArray().Single()!["content"]!.GetValue<string>();
        Assert.That(content, Is.EqualTo(reply), "the JSON still holds the reply as it came");
    }

    /// <summary>
    /// `send +1202... $EMPTY --Api:Token=...`: the parser gave the missing text's place to the next token, and the API token
    /// went to a stranger as the message (probe). An option or setting is never taken as an argument, except after `--`.
    /// </summary>
    [Test]
    public async Task Send_WithTheTextMissing_ShouldNotSendTheNextOptionAsTheMessage()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        string[] Url() => ["--data-dir", dir.Path, "--url", agent.BaseAddress.ToString()];
        foreach (var next in new[] { $"--Api:Token={agent.Token}", "--bogus", "--Agent:DefaultRegion=GB" })
        {
            var sent = await Programs.LineAgentAsync(["send", "+12025550123", next, .. Url(), $"--Api:Token={agent.Token}"]);
            Assert.That(sent.ExitCode, Is.EqualTo(1), sent.Stdout);
            Assert.That(sent.Stderr, Does.StartWith($"lineagent send: '{(next.Contains('=') ? next[..next.IndexOf('=')] + "=..." : next)}' was taken as the <content>. Nothing was done. Give <recipient> <content> first"));
            Assert.That(sent.Stderr, Does.Not.Contain(agent.Token), "the secret is not printed either");
        }
        var cancel = await Programs.LineAgentAsync(["cancel", "--Agent:DryRun=true", .. Url(), $"--Api:Token={agent.Token}"]);
        Assert.That((cancel.ExitCode, cancel.Stderr), Is.EqualTo((1,
            "lineagent cancel: '--Agent:DryRun=...' was taken as the <id>. Nothing was done. Give <id> first, then options and settings; a <id> that starts with -- goes after a --.\n")));
        using var api = agent.Api();
        Assert.That((await api.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty, "nothing was sent");

        foreach (var text in new[] { "--- see you at 5", "-Thanks", "-x=1 then more" })
        {
            var dashed = await Programs.LineAgentAsync(["send", "+12025550123", text, .. Url(), $"--Api:Token={agent.Token}"]);
            Assert.That(dashed.ExitCode, Is.Zero, dashed.Stderr);
            Assert.That(dashed.Stdout, Does.Contain($"\"{text}\""), "text that starts with a dash is still text");
        }
        var afterDoubleDash = await Programs.LineAgentAsync(["send", .. Url(), "--", "+12025550123", "--yes, that one", $"--Api:Token={agent.Token}"]);
        Assert.That(afterDoubleDash.ExitCode, Is.Zero, afterDoubleDash.Stderr);
        Assert.That(afterDoubleDash.Stdout, Does.Contain("\"--yes, that one\""), "after --, text is text");
    }

    [TestCase("a\r\nb\tc", "a\r\nb\tc")]
    [TestCase("over\rwrite", @"over\u000Dwrite", Description = "a lone CR rewrites the line")]
    [TestCase("\u001b[2J\u0000\u007f", @"\u001B[2J\u0000\u007F")]
    [TestCase("\u2068Ana\u2069 \u202A\u202D", "\u2068Ana\u2069 " + @"\u202A\u202D", Description = "isolates (phones put them around names) pass; embeddings and overrides do not")]
    [TestCase("é 日本 \u200F 🙂", "é 日本 \u200F 🙂", Description = "text and the bidi marks (not overrides) pass")]
    public void TerminalText_ShouldEscapeWhatATerminalWouldObey(string text, string printed) =>
        Assert.That(LineAgent.Cli.TerminalText.Escape(text), Is.EqualTo(printed));

    /// <summary>Input a command cannot use is one line and exit 1 (it was a stack trace), and reading commands leave no data dir behind.</summary>
    [Test]
    public async Task BadUrlsAndFiles_ShouldBeOneLine_AndATypoedDataDirShouldNotBeCreated()
    {
        using var dir = new TempDir();
        var badUrl = await Programs.LineAgentAsync("status", "--url", "not-a-url", "--data-dir", dir.Path);
        Assert.That((badUrl.ExitCode, badUrl.Stderr.Trim()), Is.EqualTo((1, "lineagent: --url 'not-a-url' is not an http:// address such as http://127.0.0.1:5117.")));
        var badFile = await Programs.LineAgentAsync("openapi", "-o", dir.File("no/such/dir/x.json"));
        Assert.That(badFile.ExitCode, Is.EqualTo(1));
        Assert.That(badFile.Stderr.Trim(), Does.StartWith($"lineagent openapi: cannot write {dir.File("no/such/dir/x.json")}:").And.Not.Contain("   at "));

        var noToken = await Programs.LineAgentAsync("status", "--data-dir", dir.Path, "--url", "http://127.0.0.1:9");
        Assert.That((noToken.ExitCode, noToken.Stderr.Trim()), Is.EqualTo((1, $"No API token: {dir.File("api-token")} does not exist. " +
            $"The agent writes it when it first starts: {LineAgent.Cli.AgentCli.StartAdvice}. Or pass the agent's --data-dir or --Api:Token.")),
            "said before asking the agent, which would answer 401; off a Mac it says run --dry-run");

        var typo = dir.File("typo-dir");
        foreach (var command in new[] { "token", "status", "list" })
        {
            var result = await Programs.LineAgentAsync(command, "--data-dir", typo, "--url", "http://127.0.0.1:9");
            Assert.That(result.ExitCode, Is.EqualTo(1), command);
            Assert.That(Directory.Exists(typo), Is.False, $"{command} created {typo}");
        }
    }

    /// <summary>A setting the agent would refuse is the doctor's first failed check, not a stack trace (the checks go on with defaults).</summary>
    /// <summary>A data dir not made yet (nor its parent): the disk check measures the nearest folder that exists.</summary>
    [Test]
    public async Task Doctor_WithADataDirNotMadeYet_ShouldMeasureTheDiskItWouldBeOn()
    {
        using var dir = new TempDir();
        var result = await Programs.LineAgentAsync("doctor", "--data-dir", Path.Combine(dir.Path, "not", "yet"), "--url", "http://127.0.0.1:9");
        TestContext.Out.WriteLine(result.Stdout + result.Stderr);
        Assert.That(result.Stdout + result.Stderr, Does.Not.Contain("   at ").And.Not.Contain("unexpected error"));
        Assert.That(result.Lines, Has.Some.Contains("Disk space: ").And.Contains("free for"));
    }

    [Test]
    public async Task Doctor_WithASettingTheAgentWouldRefuse_ShouldFailACheckNamingIt()
    {
        using var dir = new TempDir();
        var result = await Programs.LineAgentAsync("doctor", "--data-dir", dir.Path, "--url", "http://127.0.0.1:9",
            "--Lines:0:Pacing:MinGap=abc", "--Email:Smtp:Port=");
        TestContext.Out.WriteLine(result.Stdout + result.Stderr);
        Assert.That(result.ExitCode, Is.EqualTo(1));
        Assert.That(result.Lines[0], Does.StartWith("[fail] Configuration: ")
            .And.Contain("Lines:0:Pacing:MinGap must be a duration").And.Contain("Email:Smtp:Port must be a whole number"));
        Assert.That(result.Stdout, Does.Contain("[fail] Agent reachable"));
        Assert.That(result.Stdout + result.Stderr, Does.Not.Contain("   at ").And.Not.Contain("Exception"));
    }

    [Test]
    public async Task Doctor_ShouldNameEachCheck_AndExitNonZeroWhenARequiredOneFails()
    {
        using var dir = new TempDir();
        var down = await Programs.LineAgentAsync("doctor", "--data-dir", dir.Path, "--url", "http://127.0.0.1:9");
        TestContext.Out.WriteLine(down.Stdout);
        Assert.That(down.ExitCode, Is.EqualTo(1));
        Assert.That(down.Lines[0], Does.StartWith("[fail] Agent reachable: nothing answers"));
        Assert.That(down.Stdout, Does.Contain("fix: Start it"));
        // Not a Mac: the dry run (a live run has no Messages here) and no ~/Library/Logs (new-user pass).
        Assert.That(down.Stdout, OperatingSystem.IsMacOS()
            ? Does.Contain("launchctl kickstart")
            : Does.Contain("lineagent run --dry-run").And.Not.Contain("~/Library/Logs"));
        Assert.That(down.Stdout, Does.Contain("[fail] Messages running: unavailable: Messages.app needs macOS"), "a real (not dry-run) line on Linux");

        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        var up = await Programs.LineAgentAsync("doctor", "--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}");
        TestContext.Out.WriteLine(up.Stdout);
        Assert.That(up.ExitCode, Is.Zero, up.Stdout);
        var names = up.Lines.Where(l => l.StartsWith('[')).Select(l => l[7..l.IndexOf(':')]).ToList();
        Assert.That(names, Is.EqualTo(new[] { "Agent reachable", "LaunchAgent install", "Messages", "SMTP login", "Twilio credentials", "Clock", "Disk space", "Database integrity" }));
        Assert.That(up.Stdout, Does.Contain("[  ok] Database integrity: quick_check ok, schema version"));
        Assert.That(up.Stdout, Does.Contain("[skip] Messages: dry run"));
        Assert.That(up.Stdout, Does.Contain("[skip] LaunchAgent install: not macOS"), "the Mac service checks say why they did not run");

        var wrongToken = await Programs.LineAgentAsync("doctor", "--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), "--Api:Token=wrong");
        Assert.That(wrongToken.ExitCode, Is.EqualTo(1));
        Assert.That(wrongToken.Lines[0], Does.Contain("refuses the token"));
    }
}
