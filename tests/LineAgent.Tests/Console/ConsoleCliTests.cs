using System.Net;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.WebConsole;

/// <summary>`lineagent open` and unknown commands, run as a user runs them.</summary>
public sealed class ConsoleCliTests
{
    [Test]
    public async Task OpenPrintUrl_ShouldAskTheRunningAgent_WithTheSettingsAndTokenOfTheDataDir_AndReturnAtOnce()
    {
        using var dir = new TempDir();
        // The agent's token is in its data dir, as on a Mac where it was generated at the first start.
        File.WriteAllText(dir.File("api-token"), "proc-token\n");
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        var env = new Dictionary<string, string?> { ["LINEAGENT__Api__Urls"] = agent.BaseAddress.ToString().TrimEnd('/') };

        var printed = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "open", "--print-url", "--data-dir", dir.Path], env, TimeSpan.FromSeconds(30));
        Assert.That(printed.ExitCode, Is.Zero, printed.Stderr);
        var url = printed.Stdout.Trim();
        Assert.That(url, Does.Match($@"^{System.Text.RegularExpressions.Regex.Escape(agent.BaseAddress.ToString())}login\?code=[A-Za-z0-9_-]{{40,}}$"));

        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        Assert.That((await browser.GetAsync(url)).StatusCode, Is.EqualTo(HttpStatusCode.Redirect));
        Assert.That((await browser.GetAsync(url)).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), "once only");

        var otherLink = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "open", "--print-url", "--data-dir", dir.Path], env);
        Assert.That(otherLink.Stdout.Trim(), Is.Not.EqualTo(url), "a new code each time");
    }

    [TestCase(3, 1, "Could not open a browser")]
    [TestCase(0, 0, "Opened the console")]
    public async Task Open_ShouldTellTheTruthAboutTheBrowser(int openerExit, int expectedExit, string expected)
    {
        // xdg-open without a desktop prints "no method available" and exits 3: the link must then be printed, not
        // "Opened". A fake opener (first on PATH) stands in for the browser.
        using var dir = new TempDir();
        File.WriteAllText(dir.File("api-token"), "proc-token\n");
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        var bin = new LineAgent.Tests.Service.FakeBin(dir.Path)
            .Add("xdg-open", $"log_call \"$@\"\necho 'xdg-open: no method available for opening' >&2\necho 'Opening in existing browser session.'\nexit {openerExit}");
        var env = new Dictionary<string, string?>
        {
            ["LINEAGENT__Api__Urls"] = agent.BaseAddress.ToString().TrimEnd('/'), ["PATH"] = bin.PathVariable,
        };
        var result = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "open", "--data-dir", dir.Path], env, TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.EqualTo(expectedExit), result.Stderr);
        Assert.That(result.Stdout + result.Stderr, Does.Contain(expected));
        Assert.That(bin.Calls.Single(), Does.Contain("/login?code="));
        Assert.That(result.Stdout + result.Stderr, Does.Not.Contain("no method available").And.Not.Contain("existing browser session"),
            "the opener's own words are not ours to print");
        if (openerExit != 0)
            Assert.That(result.Stdout, Does.Contain("/login?code="), "the link, to open by hand");
    }

    [Test]
    public async Task Open_ShouldSaySoWhenNoAgentAnswers_OrTheTokenIsMissing()
    {
        using var dir = new TempDir();
        var noToken = await Programs.LineAgentAsync("open", "--print-url", "--data-dir", dir.Path, "--url", "http://127.0.0.1:9");
        Assert.That(noToken.ExitCode, Is.EqualTo(1));
        Assert.That(noToken.Stderr, Does.Contain("No API token"));

        File.WriteAllText(dir.File("api-token"), "some-token\n");
        var down = await Programs.LineAgentAsync("open", "--print-url", "--data-dir", dir.Path, "--url", "http://127.0.0.1:9");
        Assert.That(down.ExitCode, Is.EqualTo(1));
        Assert.That(down.Stderr, Does.Contain("does not answer at http://127.0.0.1:9"));
        Assert.That(down.Stdout, Is.Empty);
    }

    [Test]
    public async Task AnUnknownCommand_ShouldBeAnError_NeverASecondAgent()
    {
        using var dir = new TempDir();
        foreach (var args in new[] { new[] { "opne" }, ["run", "opne"], ["--Api:Token=x", "bogus"], ["--Agent:DryRun", "true", "stats"] })
        {
            var result = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, .. args, "--data-dir", dir.Path, "--urls", "http://127.0.0.1:0"],
                timeout: TimeSpan.FromSeconds(30));
            Assert.That(result.ExitCode, Is.EqualTo(1), string.Join(' ', args));
            Assert.That(result.Stderr, Does.Contain("is not a lineagent command").And.Contain("open"), string.Join(' ', args));
            Assert.That(result.Stdout, Does.Not.Contain("Now listening"));
        }
        Assert.That(File.Exists(dir.File("lineagent.db")), Is.False, "no agent started");
    }

    [TestCase(new string[0], null)]
    [TestCase(new[] { "--Api:Token=x", "--Agent:DryRun", "true" }, null)]
    [TestCase(new[] { "/Agent:DryRun", "true", "Api:Token=y", "--lines:0:Id=a" }, null)]
    [TestCase(new[] { "--Agent:DryRun=true", "opne" }, "'opne' is not a lineagent command")]
    [TestCase(new[] { "stats", "--Api:Token=x" }, "'stats' is not a lineagent command")]
    [TestCase(new[] { "--dryrun" }, "unknown option '--dryrun'. Did you mean --dry-run?")]
    [TestCase(new[] { "--Agnet:DryRun=true" }, "unknown option '--Agnet:DryRun=true'.")]
    [TestCase(new[] { "DryRun=true" }, "unknown option 'DryRun=true'.")]
    [TestCase(new[] { "--Agent:DryRunn=true" }, "unknown setting '--Agent:DryRunn=true': Agent has no setting 'DryRunn'. Did you mean Agent:DryRun?")]
    [TestCase(new[] { "--Agent:Dry-Run", "true" }, "Did you mean Agent:DryRun?")]
    [TestCase(new[] { "--Api:SendWaitSecond=5" }, "Did you mean Api:SendWaitSeconds?")]
    [TestCase(new[] { "--Lines:0:Pacing:Window:Form=09:00" }, "Did you mean Lines:0:Pacing:Window:From?")]
    [TestCase(new[] { "--Lines:0:Pacing:MinGap:Seconds=5" }, "'Lines:0:Pacing:MinGap' is a single value.")]
    [TestCase(new[] { "--Lines:mac:Pacing:MinGap=00:00:05", "--lines:0:pacing:window:days:0=Monday", "--Logging:LogLevel:Default=Warning" }, null)]
    [TestCase(new[] { "--Kestrel:Limits:MaxRequestBodySize=1", "--Agent:LaunchdLabel=com.example.agent", "--Agent:InstallPrefix=/opt/la", "--environment=Testing" }, null)]
    [TestCase(new[] { "--Agent:DryRun" }, "the setting '--Agent:DryRun' has no value; write --Agent:DryRun=value")]
    [TestCase(new[] { "--Api:Token", "--Agent:DryRunn=true" }, "the setting '--Api:Token' has no value")]
    [TestCase(new[] { "--AllowedHosts=mac.local" }, "unknown setting '--AllowedHosts=mac.local': this agent does not read it; use --Api:AllowedHosts.")]
    [TestCase(new[] { "urls=http://127.0.0.1:1" }, "use --urls.")]
    [TestCase(new[] { "--Lines:0:Pacing:Window:Days=Monday" }, "Lines:0:Pacing:Window:Days is a group of settings; give one of them (Lines:0:Pacing:Window:Days:0=value).")]
    [TestCase(new[] { "--Lines:0:Pacing:Window=x" }, "is a group of settings")]
    public void UnmatchedTokens_ShouldAllBeSettingsOfAKnownSection(string[] tokens, string? expected)
    {
        var root = new System.CommandLine.RootCommand { LineAgent.Cli.AgentCli.DryRun, LineAgent.Cli.AgentCli.DataDir };
        var problem = LineAgent.Cli.AgentCli.UnmatchedProblem(tokens, root, root, agentCommand: true);
        Assert.That(problem, expected is null ? Is.Null : Does.Contain(expected));
    }

    /// <summary>Help's aliases "/h" and "-?" are not suggested for a short typo: `lineagent -x` said "Did you mean --/h?".</summary>
    [TestCase("-x")]
    [TestCase("-j")]
    [TestCase("-hh")]
    public void AShortUnknownOption_ShouldNotBeToldToTryHelpsSlashAliases(string token)
    {
        var root = new System.CommandLine.RootCommand { LineAgent.Cli.AgentCli.DryRun, LineAgent.Cli.AgentCli.DataDir };
        var problem = LineAgent.Cli.AgentCli.UnmatchedProblem([token], root, root, agentCommand: true);
        Assert.That(problem, Does.Contain($"unknown option '{token}'.").And.Not.Contain("--/").And.Not.Contain("--?"));
    }

    /// <summary>
    /// A misspelt option was read as a setting of no section and ignored: `send ... --att 2030-...` sent at once, `run
    /// --dryrun` started a live agent, `list --stauts failed` listed everything. Each is now refused before anything runs.
    /// </summary>
    [Test]
    public async Task AMisspeltOption_ShouldBeRefused_BeforeAnythingIsSentOrStarted()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("api-token"), "some-token\n");
        foreach (var (args, expected) in new[]
                 {
                     (new[] { "send", "+12025550306", "meant for later", "--att", "2030-01-01T09:00:00Z" }, "lineagent send: unknown option '--att'. Did you mean --at?"),
                     (["send", "+12025550307", "x", "--schedule=2030-01-01T09:00:00Z"], "lineagent send: unknown option '--schedule=2030-01-01T09:00:00Z'."),
                     (["send", "+12025550308", "extra", "words", "here"], "lineagent send: unexpected 'words'. A message with spaces goes in quotes"),
                     (["list", "--stauts", "failed"], "lineagent list: unknown option '--stauts'. Did you mean --status?"),
                     (["run", "--dryrun"], "lineagent: unknown option '--dryrun'. Did you mean --dry-run?"),
                 })
        {
            var result = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, .. args, "--data-dir", dir.Path, "--url" + (args[0] == "run" ? "s" : ""), "http://127.0.0.1:9"],
                timeout: TimeSpan.FromSeconds(30));
            Assert.That(result.ExitCode, Is.EqualTo(1), string.Join(' ', args));
            Assert.That(result.Stderr, Does.StartWith(expected), string.Join(' ', args));
            Assert.That(result.Stderr, Does.Not.Contain("does not answer"), "refused before the agent was asked");
            Assert.That(result.Stdout, Does.Not.Contain("Now listening"));
        }
        Assert.That(File.Exists(dir.File("lineagent.db")), Is.False, "no agent started");
    }

    [Test]
    public async Task SettingsOnTheCommandLine_ShouldStillStartTheAgent()
    {
        using var dir = new TempDir();
        // `run --data-dir ... --urls ... --Api:Token=...` and a setting as key and value in two tokens.
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--Agent:DryRun", "true"]);
        using var api = agent.Api();
        var status = await api.GetJsonAsync("/api/status");
        Assert.That(status["dryRun"]!.GetValue<bool>(), Is.True, "--Agent:DryRun true was read");
    }
}
