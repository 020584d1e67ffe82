using System.Net;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Scheduling;

/// <summary>
/// 20 SIGKILLs at random points of a 200-message burst through the Messages emulator, then a last run that
/// settles everything: no message lost, none handed to Messages twice. A long test (about two minutes): it runs
/// when LINEAGENT_LONG_TESTS=1, e.g. `LINEAGENT_LONG_TESTS=1 dotnet test --filter Name~KillRounds`.
/// </summary>
public sealed class KillRoundsTests
{
    /// <param name="lines">Unpaced lines sharing Messages: with more than one, kills also hit sends that wait at the Messages
    /// gate (handed off, script not started), which the restart proves unsent and sends again (MessagesChannel.ReconcileAsync).</param>
    [TestCase(1)]
    [TestCase(3)]
    public async Task TwentyKillRoundsDuringABurstThroughMessages_ShouldLoseNothing_AndSendNothingTwice(int lines)
    {
        if (Environment.GetEnvironmentVariable("LINEAGENT_LONG_TESTS") != "1")
            Assert.Ignore("long test: set LINEAGENT_LONG_TESTS=1");
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        messages.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        var configured = messages.Settings(confirmTimeout: TimeSpan.FromSeconds(5));
        for (var l = 1; l < lines; l++)
        {
            configured[$"Lines:{l}:Id"] = $"line{l}";
            configured[$"Lines:{l}:Pacing:Enabled"] = "false";
        }
        var settings = AgentProcess.Args(configured);
        string LineOf(int i) => i % lines == 0 ? "default" : $"line{i % lines}";
        var dataDir = dir.File("data");
        var random = new Random(20261204);

        var ids = new List<string>();
        using (var agent = await AgentProcess.StartAsync(dataDir, args: [.. settings, "--Agent:DryRun=false"]))
        using (var api = agent.Api())
        {
            var at = DateTimeOffset.UtcNow.AddSeconds(5).ToString("O");
            for (var i = 0; i < 200; i++)
                ids.Add((await (await api.SendMessageAsync(new { content = $"round message {i:000}", type = "imessage", recipientPhone = $"+120255501{i % 100:00}", scheduledAt = at, lineId = LineOf(i) }))
                    .ExpectAsync(HttpStatusCode.Created)).Str("id"));
            agent.Kill();
        }

        var db = new Db(Path.Combine(dataDir, "lineagent.db"));
        async Task<long> Pending()
        {
            await using var c = await db.OpenAsync();
            return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages WHERE status IN ('scheduled','queued','sending')");
        }

        for (var round = 0; round < 20; round++)
        {
            using var agent = await AgentProcess.StartAsync(dataDir, args: settings);
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(100, 2500))); // a random point of the burst, by design
            agent.Kill();
            TestContext.Out.WriteLine($"round {round}: {await Pending()} still pending, {messages.Calls().Count(c => c.Script == "send.applescript")} sends so far");
        }

        using (var agent = await AgentProcess.StartAsync(dataDir, args: settings))
        {
            await Eventually.TrueAsync(async () => await Pending() == 0, "every message settled", TimeSpan.FromMinutes(3));
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        }

        await using var conn = await db.OpenAsync();
        var rows = (await conn.QueryAsync<(string Id, string Status, string? ErrorCode)>("SELECT id AS Id, status AS Status, error_code AS ErrorCode FROM messages WHERE direction = 'outbound'"))
            .ToList();
        Assert.That(rows.Select(r => r.Id), Is.EquivalentTo(ids), "a message was lost");
        var sends = messages.Calls().Where(c => c.Script == "send.applescript").GroupBy(c => MessagesEmulator.Utf8(c.Argv[2])).ToList();
        Assert.That(sends.Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, "handed to Messages twice");
        TestContext.Out.WriteLine(string.Join(", ", rows.GroupBy(r => r.Status + (r.ErrorCode is null ? "" : "/" + r.ErrorCode)).Select(g => $"{g.Key} {g.Count()}")));
        TestContext.Out.WriteLine($"{await conn.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM message_events WHERE detail LIKE '%proves it was not sent%'")} " +
                                  "sends proven unsent after a kill and queued again");
        Assert.That(rows.Where(r => r.Status == "failed").Select(r => r.ErrorCode), Is.All.AnyOf("unconfirmed", "interrupted"),
            "only a send cut off by a kill may end as maybe-sent; nothing else fails");
    }
}
