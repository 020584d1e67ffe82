using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Options;

namespace LineAgent.Tests.Service;

/// <summary>The Mac service pieces in launchd/: plist, install scripts, menu-bar plugin.</summary>
public sealed class LaunchdTests
{
    private static string Launchd(string file) => Programs.RepoFile(Path.Combine("launchd", file));

    [Test]
    public async Task PlistTemplate_ShouldBeAValidLaunchAgent_WithTheRightKeysAndTypes()
    {
        var text = await File.ReadAllTextAsync(Launchd("com.lineagent.agent.plist.template"));
        foreach (var (placeholder, value) in new Dictionary<string, string>
                 {
                     ["@@LABEL@@"] = "com.lineagent.agent", ["@@PROGRAM@@"] = "/Users/sam/Library/Application Support/LineAgent/bin/lineagent",
                     ["@@DATA_DIR@@"] = "/Users/sam/Library/Application Support/LineAgent", ["@@LOG_DIR@@"] = "/Users/sam/Library/Logs/LineAgent",
                     ["@@HOME@@"] = "/Users/sam",
                 })
            text = text.Replace(placeholder, value);
        Assert.That(text, Does.Not.Contain("@@"), "unreplaced placeholder");
        var keys = Plist.ParseDict(text);
        (string Type, JsonNode? Value) Key(string name) => (keys[name].Type, keys[name].Json);

        Assert.That(Key("Label"), Is.EqualTo(("str", (JsonNode?)"com.lineagent.agent")).Using<(string, JsonNode?)>((a, b) => a.Item1 == b.Item1 && a.Item2!.ToJsonString() == b.Item2!.ToJsonString()));
        Assert.That(Key("ProgramArguments").Type, Is.EqualTo("list"));
        Assert.That(Key("ProgramArguments").Value!.AsArray().Select(a => a!.GetValue<string>()).Last(), Is.EqualTo("run"));
        Assert.That(Key("RunAtLoad"), Is.EqualTo(("bool", (JsonNode?)true)).Using<(string, JsonNode?)>((a, b) => a.Item1 == b.Item1 && a.Item2!.ToJsonString() == b.Item2!.ToJsonString()));
        Assert.That(Key("KeepAlive").Type, Is.EqualTo("dict"));
        Assert.That(Key("KeepAlive").Value!["SuccessfulExit"]!.GetValue<bool>(), Is.False, "restart on crash, not on clean exit");
        Assert.That(Key("ThrottleInterval").Type, Is.EqualTo("int"));
        Assert.That(Key("ExitTimeOut").Type, Is.EqualTo("int"));
        Assert.That(Key("ExitTimeOut").Value!.GetValue<int>(), Is.GreaterThan((int)new AgentOptions().ShutdownTimeout.TotalSeconds),
            "launchd must wait longer than the agent's own shutdown");
        Assert.That(Key("ProcessType").Value!.GetValue<string>(), Is.EqualTo("Interactive"));
        Assert.That(Key("StandardOutPath").Value!.GetValue<string>(), Does.StartWith("/Users/sam/Library/Logs/LineAgent/"));
        Assert.That(Key("StandardErrorPath").Value!.GetValue<string>(), Does.StartWith("/Users/sam/Library/Logs/LineAgent/"));
        var env = Key("EnvironmentVariables").Value!.AsObject();
        Assert.That(env["LINEAGENT__Agent__DataDir"]!.GetValue<string>(), Is.EqualTo("/Users/sam/Library/Application Support/LineAgent"));
        Assert.That(TimeSpan.Parse(env["LINEAGENT__Agent__ShutdownTimeout"]!.GetValue<string>()).TotalSeconds,
            Is.LessThan(Key("ExitTimeOut").Value!.GetValue<int>()));
    }

    [Test]
    public async Task Scripts_ShouldPassShellcheck()
    {
        if (!File.Exists("/usr/bin/shellcheck"))
            Assert.Ignore("shellcheck is not installed (.ci/run installs it)");
        var result = await Programs.RunAsync("/usr/bin/shellcheck",
            ["-x", Launchd("install.sh"), Launchd("uninstall.sh"), Launchd("common.sh"), Launchd("menubar/lineagent.30s.sh"), Programs.RepoFile(".ci/run")]);
        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
    }

    [Test]
    public async Task InstallDryRun_ShouldPrintTheStepsOnLinux_AndChangeNothing()
    {
        using var home = new TempDir();
        var env = new Dictionary<string, string?> { ["HOME"] = home.Path };
        var result = await Programs.RunAsync("/bin/bash", [Launchd("install.sh"), "--dry-run", "--rid", "osx-arm64"], env);

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("+ dotnet publish").And.Contain("-r osx-arm64 --self-contained true"));
        Assert.That(result.Stdout, Does.Contain("Library/LaunchAgents/com.lineagent.agent.plist"));
        Assert.That(result.Stdout, Does.Contain("+ launchctl bootstrap gui/"));
        Assert.That(Directory.EnumerateFileSystemEntries(home.Path), Is.Empty, "a dry run writes nothing");

        var real = await Programs.RunAsync("/bin/bash", [Launchd("install.sh")], env);
        Assert.That(real.ExitCode, Is.EqualTo(1));
        Assert.That(real.Stderr + real.Stdout, Does.Contain("macOS"));

        var uninstall = await Programs.RunAsync("/bin/bash", [Launchd("uninstall.sh"), "--dry-run", "--purge"], env);
        Assert.That(uninstall.ExitCode, Is.Zero, uninstall.Stderr);
        Assert.That(uninstall.Stdout, Does.Contain("launchctl bootout"));
    }

    [Test]
    public async Task MenuBarPlugin_ShouldShowTheRunningAgent_AndPauseALine()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        using (var api = agent.Api())
        {
            await (await api.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550123" })).ExpectAsync(System.Net.HttpStatusCode.Created);
            await (await api.SendMessageAsync(new { content = "later", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddHours(2).ToString("O") }))
                .ExpectAsync(System.Net.HttpStatusCode.Created);
        }
        var env = new Dictionary<string, string?> { ["LINEAGENT_URL"] = agent.BaseAddress.ToString().TrimEnd('/'), ["LINEAGENT_TOKEN"] = agent.Token, ["HOME"] = dir.Path };
        var plugin = Launchd("menubar/lineagent.30s.sh");

        var output = await Programs.RunAsync("/bin/bash", [plugin], env);
        TestContext.Out.WriteLine(output.Stdout);
        Assert.That(output.ExitCode, Is.Zero, output.Stderr);
        var lines = output.Lines;
        Assert.That(lines[0], Does.Match(@"^DRY . 0$"), "bar: dry-run marker, state glyph, queued count");
        Assert.That(lines[1], Is.EqualTo("---"));
        Assert.That(lines[2], Does.StartWith("LineAgent 0.1.0 — up "));
        Assert.That(lines, Has.Some.StartsWith("Dry run: sends go to "));
        Assert.That(lines, Has.Some.EqualTo("Default line: active"));
        Assert.That(lines, Has.Some.Match(@"^--imessage: ok"));
        Assert.That(lines, Has.None.Contains("window closed"), "the dry-run outbox is not paced");
        Assert.That(lines, Has.Some.Match(@"^--Pause line \| bash=.*lineagent\.30s\.sh param1=pause param2=default terminal=false refresh=true$"));
        Assert.That(lines, Has.Some.EqualTo("Scheduled: 1"));
        Assert.That(lines, Has.Some.EqualTo("Sent today: 1"));
        Assert.That(lines, Has.Some.EqualTo("Failed today: 0"));
        Assert.That(lines, Has.Some.Match(@"^Next scheduled: \S"));
        Assert.That(lines, Has.Some.EqualTo("Last error: none"));
        Assert.That(lines, Has.Some.Match(@"^Open log in Console \| bash=/usr/bin/open param1=-a param2=Console param3=.*lineagent\.log terminal=false$"));
        Assert.That(lines, Has.Some.EqualTo($"Open API docs | href={agent.BaseAddress.ToString().TrimEnd('/')}/openapi/v1.json"));
        Assert.That(lines.Last(), Is.EqualTo("Refresh | refresh=true"));

        var pause = await Programs.RunAsync("/bin/bash", [plugin, "pause", "default"], env);
        Assert.That(pause.ExitCode, Is.Zero, pause.Stderr);
        var paused = await Programs.RunAsync("/bin/bash", [plugin], env);
        Assert.That(paused.Lines[0], Does.Contain("⏸"));
        Assert.That(paused.Lines, Has.Some.EqualTo("Default line: paused"));
        Assert.That(paused.Lines, Has.Some.Match(@"^--Resume line \| .*param1=resume param2=default"));
        var resume = await Programs.RunAsync("/bin/bash", [plugin, "resume", "default"], env);
        Assert.That(resume.ExitCode, Is.Zero);
        var unknown = await Programs.RunAsync("/bin/bash", [plugin, "pause", "nope"], env);
        Assert.That(unknown.ExitCode, Is.EqualTo(1));
    }

    [Test]
    public async Task MenuBarPlugin_ShouldSayAgentNotRunning_WhenNothingAnswers()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string?> { ["LINEAGENT_URL"] = "http://127.0.0.1:9", ["LINEAGENT_TOKEN"] = "x", ["HOME"] = dir.Path };
        var output = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(output.Stdout);
        Assert.That(output.ExitCode, Is.Zero);
        Assert.That(output.Lines[0], Is.EqualTo("○ LineAgent"));
        Assert.That(output.Lines[1], Is.EqualTo("---"));
        Assert.That(output.Lines[2], Is.EqualTo("Agent not running"));
        Assert.That(output.Lines, Has.Some.Match(@"^Start it: launchctl kickstart -k gui/\d+/com\.lineagent\.agent \| bash=/bin/launchctl"));
        Assert.That(output.Lines.Last(), Is.EqualTo("Refresh | refresh=true"));
        Assert.That(output.Stdout, Does.Not.Contain("Scheduled:"), "nothing that pretends to know the agent's state");
    }

    [Test]
    public void GeneratedToken_ShouldBeWrittenWithMode0600_AndReused()
    {
        using var dir = new TempDir();
        var first = new ApiToken(Options.Create(new ApiOptions()), new DataDirectory(dir.Path));
        var second = new ApiToken(Options.Create(new ApiOptions()), new DataDirectory(dir.Path));
        Assert.That(second.Value, Is.EqualTo(first.Value));
        Assert.That(File.GetUnixFileMode(dir.File("api-token")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(first.Matches(first.Value), Is.True);
        Assert.That(first.Matches(first.Value + "x"), Is.False);
    }
}
