using System.Net;
using System.Net.Http.Json;
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
        // All ten are in before the first is due, posted one after another (their order is the order of the waves).
        var at = DateTimeOffset.UtcNow.AddSeconds(3);
        var ids = new List<string>();
        for (var i = 0; i < 10; i++)
            ids.Add((await (await api.SendMessageAsync(new { content = $"wave {i}", recipientPhone = $"+120255501{i:D2}", scheduledAt = at.ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));
        Assert.That(DateTimeOffset.UtcNow, Is.LessThan(at), "the 10 POSTs took longer than 3 s: the first wave began before they were all in");

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
            // From = To: open all day. 00:00-23:59 was closed from 23:59 to midnight, and this test runs on the system clock:
            // a run in that minute waited for midnight and timed out (seen in a clean-clone run at 23:59 UTC).
            ["Lines:0:Pacing:Window:From"] = "00:00",
            ["Lines:0:Pacing:Window:To"] = "00:00",
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

    /// <summary>
    /// The step asks the suppression list once for its whole batch: in a batch of four, the two suppressed recipients (one
    /// an email suppressed in other letter case) fail `suppressed` with no outbox file; the other two are sent.
    /// </summary>
    [Test]
    public async Task ABatchWithSuppressedRecipients_ShouldFailThoseWithoutAFile_AndSendTheRest()
    {
        using var agent = new AgentFactory(settings: new Dictionary<string, string?>
        {
            ["Agent:DryRunParallelSends"] = "4",
            ["Lines:0:Pacing:Enabled"] = "false",
        });
        using var api = agent.Api();
        var at = agent.Time.GetUtcNow().AddMinutes(5);
        var recipients = new object[]
        {
            new { recipientPhone = "+12025550181" }, new { recipientEmail = "ana@example.com" },
            new { recipientPhone = "+12025550182" }, new { recipientPhone = "+12025550183" },
        };
        var ids = new List<string>();
        foreach (var to in recipients)
        {
            var body = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(to))!.AsObject();
            body["content"] = "batch with opt-outs";
            body["scheduledAt"] = at.ToString("O");
            ids.Add((await (await api.SendMessageAsync(body)).ExpectAsync(HttpStatusCode.Created)).Str("id"));
        }
        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "ANA@Example.com", reason = "asked us to stop" })).ExpectAsync(HttpStatusCode.Created);
        await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550182", reason = "asked us to stop" })).ExpectAsync(HttpStatusCode.Created);

        await agent.AdvanceToAsync(at);
        var db = agent.Services.GetRequiredService<Db>();
        var rows = await Eventually.ValueAsync(async () =>
        {
            await using var c = await db.OpenAsync();
            return (await c.QueryAsync<(string Id, string Status, string? ErrorCode)>("SELECT id, status, error_code FROM messages")).ToDictionary(x => x.Id);
        }, r => r.Values.All(x => x.Status is "sent" or "failed"), "every message settled");
        Assert.That(ids.Select(id => rows[id].Status), Is.EqualTo(new[] { "sent", "failed", "failed", "sent" }));
        Assert.That(ids.Select(id => rows[id].ErrorCode), Is.EqualTo(new[] { null, "suppressed", "suppressed", null }));
        Assert.That(ids.Select(agent.OutboxFileCount), Is.EqualTo(new[] { 1, 0, 0, 1 }));
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
