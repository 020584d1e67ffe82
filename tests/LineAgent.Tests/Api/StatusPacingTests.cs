using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Api;

/// <summary>/api/status and /api/lines say one thing about "is this line paced": the pacer's answer, with the reason when not.</summary>
public sealed class StatusPacingTests
{
    [TestCase(null, "true", false, "Dry run: the outbox is not paced")]
    [TestCase("true", "true", true, null)]
    [TestCase("true", "false", false, "Pacing is switched off for this line")]
    public async Task PacingEnabled_ShouldBeOneTruth_InStatusLinesAndUsage(string? dryRunPacing, string? lineEnabled, bool expected, string? note)
    {
        using var agent = new AgentFactory(settings: new Dictionary<string, string?>
        {
            ["Agent:DryRunPacing"] = dryRunPacing, ["Lines:0:Pacing:Enabled"] = lineEnabled,
        });
        using var api = agent.Api();

        var status = await api.GetJsonAsync("/api/status");
        Assert.That(status["dryRun"]!.GetValue<bool>(), Is.True);
        Assert.That(status["storage"]!["code"], Is.Null, "no problem code while storage is fine");
        var fromStatus = status["lines"]!.AsArray().Single()!;
        var list = (await api.GetFromJsonAsync<JsonArray>("/api/lines"))!.Single()!;
        var one = await api.GetJsonAsync("/api/lines/default");
        foreach (var (line, where) in new[] { (fromStatus, "status"), (list, "lines"), (one, "lines/default") })
        {
            Assert.That(line["pacing"]!["enabled"]!.GetValue<bool>(), Is.EqualTo(expected), $"{where}: pacing.enabled");
            Assert.That(line["usage"]!["pacingEnabled"]!.GetValue<bool>(), Is.EqualTo(expected), $"{where}: usage.pacingEnabled");
            if (note is null)
                Assert.That(line["pacing"]!["note"], Is.Null, where);
            else
                Assert.That(line["pacing"].Str("note"), Does.StartWith(note), where);
        }
    }
}

/// <summary>Uptime counts from the agent's start, not from the first request that asks for it.</summary>
public sealed class StatusUptimeTests
{
    [Test]
    public async Task StartedAt_ShouldBeTheStart_EvenWhenStatusIsFirstAskedLater()
    {
        using var agent = new AgentFactory();
        var start = agent.Time.GetUtcNow();
        using var api = agent.Api(); // the host is built and started here
        agent.Time.Advance(TimeSpan.FromMinutes(5));

        var status = await api.GetJsonAsync("/api/status");
        Assert.That(DateTimeOffset.Parse(status.Str("startedAt")), Is.EqualTo(start));
        Assert.That(status["uptimeSeconds"]!.GetValue<long>(), Is.EqualTo(300));
    }
}
