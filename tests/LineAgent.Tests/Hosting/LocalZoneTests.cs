using LineAgent.Hosting;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Hosting;

/// <summary>
/// A TZ that .NET cannot read makes the local zone UTC without a word; schedules and send windows that name no zone then
/// run in UTC. The agent and doctor say so.
/// </summary>
public sealed class LocalZoneTests
{
    [TestCase("CET-1CEST,M3.5.0,M10.5.0/3", true, Description = "a POSIX rule")]
    [TestCase("Nowhere/City", true)]
    [TestCase("Europe/Berlin", false)]
    [TestCase(":Europe/Berlin", false, Description = "the leading colon POSIX allows")]
    [TestCase("UTC", false)]
    [TestCase("", false)]
    [TestCase(null, false)]
    public void Problem_ShouldNameATzThisMachineCannotRead(string? tz, bool problem)
    {
        var said = LocalZone.Problem(tz, TimeZoneInfo.Utc);

        Assert.That(said is not null, Is.EqualTo(problem), said);
        if (problem)
            Assert.That(said, Does.Contain($"TZ is '{tz}'").And.Contain("read in UTC"));
    }

    [Test]
    public async Task AnAgentStartedWithAPosixRuleInTz_ShouldWarnThatItsLocalTimeIsUtc()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.File("data"), args: ["--dry-run"],
            env: new Dictionary<string, string> { ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3" });

        Assert.That(agent.Output, Does.Contain("TZ is 'CET-1CEST,M3.5.0,M10.5.0/3', which is not a time zone name this machine knows"));
        Assert.That(agent.Output, Does.Contain("read in UTC"));
    }

    [Test]
    public async Task Doctor_WithAPosixRuleInTz_ShouldWarnInItsClockCheck()
    {
        using var dir = new TempDir();
        var result = await Programs.RunAsync("dotnet", [AgentProcess.AgentDll, "doctor", "--data-dir", dir.Path, "--url", "http://127.0.0.1:9"],
            new Dictionary<string, string?> { ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3" });

        Assert.That(result.Lines, Has.Some.Contains("Clock: ").And.Contains("TZ is 'CET-1CEST,M3.5.0,M10.5.0/3'"), result.Stdout);
    }

    [Test]
    public async Task AnAgentStartedWithAZoneNameInTz_ShouldNotWarn()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.File("data"), args: ["--dry-run"],
            env: new Dictionary<string, string> { ["TZ"] = "Europe/Berlin" });

        Assert.That(agent.Output, Does.Not.Contain("TZ is"));
    }
}
