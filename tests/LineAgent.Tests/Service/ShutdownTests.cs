using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Service;

public sealed class ShutdownTests
{
    private const int Burst = 60;

    /// <summary>
    /// Review: a Messages script cut by the shutdown timeout after `send` (Messages may have sent it) was written `interrupted`,
    /// which the delivery watcher never looks at again, though chat.db has the row. It is left `sending` for chat.db to
    /// confirm, as after an attempt's timeout: sent once the next start reads the row.
    /// </summary>
    [Test]
    public async Task AStopCuttingAMessagesScriptAfterSend_ShouldLeaveItForChatDbToConfirm()
    {
        using var dir = new TempDir();
        var messages = new MessagesEmulator(dir.File("messages"));
        string[] args = [.. Bridge.LiveCheckTests.BridgeArgs(messages), "--Agent:ShutdownTimeout=00:00:02"];
        string id;
        using (var agent = await AgentProcess.StartAsync(dir.File("data"), args: args))
        {
            using var api = agent.Api();
            messages.Control(new { hang = "after_send", hangCount = 1, hangMaxMs = 60_000 });
            id = (await (await api.SendMessageAsync(new { content = "cut after send", type = "imessage", recipientPhone = "+12025550188",
                scheduledAt = DateTimeOffset.UtcNow.AddSeconds(1).ToString("O") })).ExpectAsync(HttpStatusCode.Created)).Str("id");
            await Eventually.TrueAsync(() => Task.FromResult(messages.State()["counters"]?["hang"]?.GetValue<int>() >= 1), "the script hangs after send",
                TimeSpan.FromSeconds(30));
            Assert.That(await agent.TerminateAsync(TimeSpan.FromSeconds(20)), Is.Zero, agent.Output);
            var left = await ReadStatusAsync(dir.File("data"), id);
            Assert.That(left, Is.EqualTo("sending"), "left for chat.db, not failed");
        }

        using var again = await AgentProcess.StartAsync(dir.File("data"), args: args);
        using var againApi = again.Api();
        var m = await Eventually.ValueAsync(() => againApi.GetJsonAsync($"/api/messages/{id}")!, x => x.Str("status") != "sending", "settled",
            TimeSpan.FromSeconds(60));
        Assert.That(m.Str("status"), Is.EqualTo("sent"), m.ToJsonString());
    }

    private static async Task<string> ReadStatusAsync(string dataDir, string id)
    {
        var db = new Db(Path.Combine(dataDir, "lineagent.db"));
        await using var c = await db.OpenAsync();
        return await c.ExecuteScalarAsync<string>("SELECT status FROM messages WHERE id = @id", new { id }) ?? "(none)";
    }

    /// <summary>
    /// Probe M: the data directory deleted under a running agent: it went on with the deleted database (201 to sends no later
    /// start would find, storage "ok", and a second agent could start beside it). It stops itself, exit 75 (launchd starts it
    /// again), and the next start makes a new database there.
    /// </summary>
    [Test]
    public async Task TheDataDirectoryDeletedUnderARunningAgent_ShouldStopIt_AndTheNextStartBeginsAgain()
    {
        using var dir = new TempDir();
        var dataDir = dir.File("data");
        using (var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]))
        {
            using (var api = agent.Api())
                await (await api.SendMessageAsync(new { content = "before", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
            Directory.Delete(dataDir, recursive: true);

            int exit;
            try { exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)); }
            catch (TimeoutException) { Assert.Fail("the agent went on without its database:\n" + agent.Output); throw; }
            Assert.That(exit, Is.EqualTo(AgentExit.DatabaseGone), agent.Output);
            Assert.That(agent.Output, Does.Contain("was deleted (or its data directory) while the agent ran"));
        }

        using var again = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
        using var againApi = again.Api();
        await (await againApi.SendMessageAsync(new { content = "after", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
    }

    /// <summary>
    /// The same, with a send straight after the deletion: before, it was answered 201 for the seconds until the next check
    /// (stored only in the deleted file). Every commit looks first (the commit guard): 503 `storage_error`, nothing stored; the
    /// agent stops (that the refusal wakes the watch at once is DataDirWatchTests').
    /// </summary>
    [Test]
    public async Task ASendAfterTheDataDirectoryWasDeleted_ShouldBeRefused_AndStopTheAgent()
    {
        using var dir = new TempDir();
        var dataDir = dir.File("data");
        using var agent = await AgentProcess.StartAsync(dataDir, args: ["--dry-run"]);
        using (var api = agent.Api())
        {
            await (await api.SendMessageAsync(new { content = "before", recipientPhone = "+12025550123" })).ExpectAsync(HttpStatusCode.Created);
            Directory.Delete(dataDir, recursive: true);

            var refused = await (await api.SendMessageAsync(new { content = "after", recipientPhone = "+12025550123" }))
                .ExpectAsync(HttpStatusCode.ServiceUnavailable);
            Assert.That(refused.Str("code"), Is.EqualTo("storage_error"), refused.ToJsonString());
            Assert.That(refused.Str("detail"), Does.Contain("was deleted").And.Contain("nothing was stored"), refused.ToJsonString());
            // A store that writes on a pooled connection, not through the writer, as well.
            var suppression = await (await api.PostAsJsonAsync("/api/suppressions", new { address = "+12025550125", reason = "asked" }))
                .ExpectAsync(HttpStatusCode.ServiceUnavailable);
            Assert.That(suppression.Str("code"), Is.EqualTo("storage_error"), suppression.ToJsonString());
        }

        int exit;
        try { exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)); }
        catch (TimeoutException) { Assert.Fail("the agent went on without its database:\n" + agent.Output); throw; }
        Assert.That(exit, Is.EqualTo(AgentExit.DatabaseGone), agent.Output);
    }

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
