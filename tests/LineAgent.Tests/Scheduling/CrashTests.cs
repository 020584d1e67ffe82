using System.Net;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Scheduling;

/// <summary>The agent killed with SIGKILL in the middle of a burst, then restarted: nothing lost, nothing twice.</summary>
public sealed class CrashTests
{
    [Test]
    public async Task SigkillDuringABurst_ThenRestart_ShouldLeaveEveryMessageInOneFinalState_AndSendNoneTwice()
    {
        using var dir = new TempDir();
        // Five rounds of 8 sends, 300 ms each: the kill after the first round lands with about a second of the burst left,
        // even when this process is slow to act on what it saw (with 16 at 150 ms a starved test process killed too late).
        var slow = new[] { "--dry-run", "--Agent:DryRunSendDelay=00:00:00.300", "--Agent:DryRunParallelSends=8" };
        var ids = new List<string>();
        using (var agent = await AgentProcess.StartAsync(dir.Path, args: slow))
        using (var api = agent.Api())
        {
            // All 40 are in before they are due (posted at once, due 5 s later), so the burst starts whole after the POSTs.
            var at = DateTimeOffset.UtcNow.AddSeconds(5);
            var posts = Enumerable.Range(0, 40).Select(async i =>
                (await (await api.SendMessageAsync(new { content = $"burst {i:00}", recipientPhone = "+12025550123", scheduledAt = at.ToString("O") }))
                    .ExpectAsync(HttpStatusCode.Created)).Str("id"));
            ids.AddRange(await Task.WhenAll(posts));
            Assert.That(DateTimeOffset.UtcNow, Is.LessThan(at), "the 40 POSTs took longer than 5 s: the burst began before they were all in");
            await Eventually.TrueAsync(() => Outbox(dir).Length >= 8, "a few sends before the kill", TimeSpan.FromSeconds(30));
            agent.Kill();
        }

        var db = new Db(dir.File("lineagent.db"));
        long sentBefore, inFlightAtKill;
        await using (var c = await db.OpenAsync())
        {
            sentBefore = await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages WHERE status = 'sent'");
            inFlightAtKill = await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages WHERE status = 'sending'");
        }
        Assert.That(sentBefore, Is.LessThan(40), "the kill came too late to interrupt the burst");
        TestContext.Out.WriteLine($"at the kill: {sentBefore} sent, {inFlightAtKill} sending, {Outbox(dir).Length} outbox files");

        using (var agent = await AgentProcess.StartAsync(dir.Path, args: slow))
        {
            await Eventually.TrueAsync(async () =>
            {
                await using var c = await db.OpenAsync();
                return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages WHERE status IN ('scheduled','queued','sending')") == 0;
            }, "every message settled after the restart", TimeSpan.FromSeconds(60));
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        }

        await using var conn = await db.OpenAsync();
        var statuses = (await conn.QueryAsync<(string Id, string Status)>("SELECT id, status FROM messages")).ToDictionary(x => x.Id, x => x.Status);
        Assert.That(statuses.Keys, Is.EquivalentTo(ids), "a message was lost");
        Assert.That(statuses.Values.Distinct(), Is.EqualTo(new[] { "sent" }));

        var delivered = Outbox(dir).Select(f => JsonNode.Parse(File.ReadAllText(f))!).ToList();
        var perContent = delivered.GroupBy(j => j.Str("content")).ToDictionary(g => g.Key, g => g.Count());
        Assert.That(perContent, Has.Count.EqualTo(40));
        Assert.That(perContent.Where(kv => kv.Value > 1).Select(kv => kv.Key), Is.Empty, "content delivered twice");
    }

    /// <summary>
    /// Group commit keeps the promise: a request answered 201 is on disk. Requests in flight from 16 clients,
    /// SIGKILL right after the last answer, restart: every answered message is there.
    /// </summary>
    [Test]
    public async Task SigkillStraightAfterTheAnswers_ShouldLoseNoAnsweredMessage()
    {
        using var dir = new TempDir();
        var answered = new System.Collections.Concurrent.ConcurrentBag<string>();
        using (var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]))
        using (var api = agent.Api())
        {
            var later = DateTimeOffset.UtcNow.AddDays(30).ToString("O");
            await Parallel.ForEachAsync(Enumerable.Range(0, 400), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
            {
                var m = await (await api.SendMessageAsync(new { content = $"kept {i}", recipientPhone = "+12025550123", scheduledAt = later }))
                    .ExpectAsync(HttpStatusCode.Created);
                answered.Add(m.Str("id"));
            });
            agent.Kill();
        }

        using (var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]))
        using (var api = agent.Api())
        {
            var db = new Db(dir.File("lineagent.db"));
            await using var c = await db.OpenAsync();
            var stored = (await c.QueryAsync<string>("SELECT id FROM messages WHERE status = 'scheduled'")).ToHashSet();
            Assert.That(answered.Where(id => !stored.Contains(id)), Is.Empty, "an answered message was lost");
            Assert.That(answered, Has.Count.EqualTo(400));
            // The search index is filled in batches: what the kill left out was added at this start.
            await c.ExecuteAsync("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");
            var found = (await api.GetJsonAsync("/api/messages?q=kept&limit=500"))["items"]!.AsArray().Select(m => m.Str("id")).ToHashSet();
            Assert.That(answered.Where(id => !found.Contains(id)), Is.Empty, "an answered message missing from search");
            TestContext.Out.WriteLine(string.Join("\n", agent.Output.Split('\n').Where(l => l.Contains("search index"))));
        }
    }

    private static string[] Outbox(TempDir dir) =>
        Directory.Exists(dir.File("outbox")) ? Directory.GetFiles(dir.File("outbox"), "*.json") : [];
}
