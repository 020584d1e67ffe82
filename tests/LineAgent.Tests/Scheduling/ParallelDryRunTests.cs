using System.Net;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Scheduling;

/// <summary>
/// An unpaced dry-run line hands over several due messages at once (Agent:DryRunParallelSends), each claimed and
/// handed off on disk before its outbox file is written; a paced line, and every real channel, one at a time.
/// </summary>
public sealed class ParallelDryRunTests
{
    [Test]
    public async Task UnpacedDryRunLine_ShouldKeepAtMostTheSetNumberInFlight_InDueOrder_AndSendEachOnce()
    {
        using var agent = new AgentFactory(settings: new Dictionary<string, string?>
        {
            ["Agent:DryRunParallelSends"] = "4",
            ["Agent:DryRunSendDelay"] = "00:00:01.500", // each send stays in flight long enough to be seen
            ["Lines:0:Pacing:Enabled"] = "false",
        }, systemClock: true);
        using var api = agent.Api();
        var at = DateTimeOffset.UtcNow.AddSeconds(1);
        var ids = new List<string>();
        for (var i = 0; i < 10; i++)
            ids.Add((await (await api.SendMessageAsync(new { content = $"wave {i}", recipientPhone = $"+120255501{i:D2}", scheduledAt = at.ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var db = agent.Services.GetRequiredService<Db>();
        var waves = new List<string[]>();
        foreach (var expected in new[] { 4, 4, 2 })
        {
            var inFlight = await Eventually.ValueAsync(async () => (string[]?)await SendingAsync(db), s => s.Length == expected, $"{expected} in flight");
            // The line takes no more while these are out, and none of them has an outbox file yet.
            Assert.That(inFlight.Where(id => agent.OutboxFileCount(id) > 0), Is.Empty);
            waves.Add(inFlight);
            await Eventually.TrueAsync(async () => inFlight.All(id => agent.OutboxFileCount(id) == 1) && !(await SendingAsync(db)).Intersect(inFlight).Any(),
                "the wave sent");
        }

        Assert.That(waves.SelectMany(w => w.Order()), Is.EqualTo(new[] { ids[..4], ids[4..8], ids[8..] }.SelectMany(w => w.Order())),
            "each wave takes the next due messages");
        await Eventually.TrueAsync(async () => (await StatusesAsync(db)).All(s => s == "sent"), "all sent");
        Assert.That(ids.Select(agent.OutboxFileCount), Is.All.EqualTo(1), "one outbox file per message");
    }

    [Test]
    public async Task DryRunLineWithPacing_ShouldHandOverOneAtATime()
    {
        using var agent = new AgentFactory(settings: new Dictionary<string, string?>
        {
            ["Agent:DryRunParallelSends"] = "4",
            ["Agent:DryRunPacing"] = "true",
            ["Agent:DryRunSendDelay"] = "00:00:01",
            ["Lines:0:Pacing:MinGap"] = "00:00:00",
            ["Lines:0:Pacing:Jitter"] = "00:00:00",
            ["Lines:0:Pacing:Window:From"] = "00:00",
            ["Lines:0:Pacing:Window:To"] = "23:59",
        }, systemClock: true);
        using var api = agent.Api();
        var at = DateTimeOffset.UtcNow.AddSeconds(1);
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
            ids.Add((await (await api.SendMessageAsync(new { content = $"paced {i}", recipientPhone = "+12025550123", scheduledAt = at.ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        var db = agent.Services.GetRequiredService<Db>();
        for (var i = 0; i < 3; i++)
        {
            var inFlight = await Eventually.ValueAsync(async () => (string[]?)await SendingAsync(db), s => s.Length > 0, "a send in flight");
            Assert.That(inFlight, Is.EqualTo(new[] { ids[i] }));
            await Eventually.TrueAsync(async () => agent.OutboxFileCount(ids[i]) == 1 && !(await SendingAsync(db)).Contains(ids[i]), $"message {i} sent");
        }
    }

    private static async Task<string[]> SendingAsync(Db db)
    {
        await using var c = await db.OpenAsync();
        return (await c.QueryAsync<string>("SELECT id FROM messages WHERE status = 'sending' ORDER BY id")).ToArray();
    }

    private static async Task<string[]> StatusesAsync(Db db)
    {
        await using var c = await db.OpenAsync();
        return (await c.QueryAsync<string>("SELECT status FROM messages")).ToArray();
    }
}
