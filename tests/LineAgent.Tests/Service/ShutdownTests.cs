using System.Net;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Service;

public sealed class ShutdownTests
{
    private const int Burst = 60;

    /// <summary>
    /// A send-now request waiting for its send (Messages hung on it) when SIGTERM comes: the client got a closed connection
    /// and no answer once the shutdown timeout passed, and a client without an answer may send it again (probe). It is
    /// answered with the message as it stands.
    /// </summary>
    [Test]
    public async Task SigtermWhileASendNowWaitsOnAHungMessages_ShouldStillAnswerTheRequest()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        using var agent = await AgentProcess.StartAsync(dir.File("data"),
            args: [.. Bridge.LiveCheckTests.BridgeArgs(messages), "--Api:SendWaitSeconds=60", "--Agent:ShutdownTimeout=00:00:20"]);
        using var api = agent.Api();
        messages.Control(new { hang = "before_send", hangMaxMs = 15_000 });
        var request = api.SendMessageAsync(new { content = "are you there?", type = "imessage", recipientPhone = "+12025550188" });
        await Eventually.TrueAsync(() => Task.FromResult(messages.State()["counters"]?["hang"]?.GetValue<int>() >= 1), "the send hangs in Messages",
            TimeSpan.FromSeconds(30));

        var stopping = agent.TerminateAsync(TimeSpan.FromSeconds(90));
        var answer = await (await request).ExpectAsync(HttpStatusCode.Created);
        Assert.That(answer.Str("status"), Is.EqualTo("sending"), answer.ToJsonString());
        await stopping;
    }

    /// <summary>
    /// launchd stops the agent with SIGTERM: it finishes the sends in flight (up to Agent:DryRunParallelSends, 16, on the
    /// unpaced dry-run line), leaves nothing claimed, exits 0.
    /// </summary>
    [Test]
    public async Task SigtermDuringABurst_ShouldExit0_LeaveNothingSending_AndSendNothingTwice()
    {
        using var dir = new TempDir();
        var slow = new[] { "--dry-run", "--Agent:DryRunSendDelay=00:00:00.400" };
        var ids = new List<string>();
        using (var agent = await AgentProcess.StartAsync(dir.Path, args: slow))
        using (var api = agent.Api())
        {
            // All in before they are due (posted at once, due 5 s later): the stop comes early in a whole burst, however slow
            // this machine is to post them.
            var at = DateTimeOffset.UtcNow.AddSeconds(5);
            ids.AddRange(await Task.WhenAll(Enumerable.Range(0, Burst).Select(async i => (await (await api.SendMessageAsync(new
            {
                content = $"burst {i:00}", recipientPhone = "+12025550123", scheduledAt = at.ToString("O"),
            })).ExpectAsync(HttpStatusCode.Created)).Str("id"))));
            Assert.That(DateTimeOffset.UtcNow, Is.LessThan(at), $"the {Burst} POSTs took longer than 5 s: the burst began before they were all in");
            await Eventually.TrueAsync(() => Outbox(dir).Length >= 3, "a few sends", TimeSpan.FromSeconds(30));

            var exit = await agent.TerminateAsync(TimeSpan.FromSeconds(30));

            Assert.That(exit, Is.Zero, agent.Output);
        }

        var db = new Db(dir.File("lineagent.db"));
        await using (var c = await db.OpenAsync())
        {
            var counts = (await c.QueryAsync<(string Status, long N)>("SELECT status AS Status, COUNT(*) AS N FROM messages GROUP BY status"))
                .ToDictionary(x => x.Status, x => x.N);
            TestContext.Out.WriteLine(string.Join(", ", counts.Select(kv => $"{kv.Key} {kv.Value}")));
            Assert.That(counts.GetValueOrDefault("sending"), Is.Zero, "a send was left half done");
            Assert.That(counts.GetValueOrDefault("sent"), Is.EqualTo(Outbox(dir).Length), "every finished hand-off is recorded");
            Assert.That(counts.GetValueOrDefault("sent"), Is.LessThan(Burst), "the stop came after the burst was over");
        }

        // The rest goes out after a restart, and nothing twice.
        using (var again = await AgentProcess.StartAsync(dir.Path, args: slow))
        {
            await Eventually.TrueAsync(() => Outbox(dir).Length == Burst, "the rest sent", TimeSpan.FromSeconds(60));
            Assert.That(await again.TerminateAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        }
        var contents = Outbox(dir).Select(f => JsonNode.Parse(File.ReadAllText(f)).Str("content")).ToList();
        Assert.That(contents, Is.Unique);
        Assert.That(contents, Has.Count.EqualTo(Burst));
    }

    private static string[] Outbox(TempDir dir) =>
        Directory.Exists(dir.File("outbox")) ? Directory.GetFiles(dir.File("outbox"), "*.json") : [];
}
