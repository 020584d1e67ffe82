using System.Net;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Hosting;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Scheduling;

public sealed class DispatcherTests
{
    [Test]
    public async Task ScheduledMessage_ShouldBeHandedToItsChannelWithin1s_OfItsTime()
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        var at = agent.Time.GetUtcNow().AddMinutes(10).AddMilliseconds(250);
        var m = await (await api.SendMessageAsync(new { content = "on time", recipientPhone = "+12025550123", scheduledAt = at.ToString("O") }))
            .ExpectAsync(HttpStatusCode.Created);

        // The worker sleeps until the due time (in steps of at most MaxSleep), never on a coarse poll.
        var firstWake = await Eventually.ValueAsync(() => agent.Dispatcher.SleepingUntil("default"), "worker asleep");
        Assert.That(firstWake, Is.EqualTo(agent.Time.GetUtcNow() + Dispatcher.MaxSleep));
        await agent.AdvanceToAsync(at);

        await Eventually.TrueAsync(() => agent.OutboxFileCount(m.Str("id")) == 1, "the outbox file");
        var handedAt = DateTimeOffset.Parse(JsonNode.Parse(File.ReadAllText(agent.OutboxFiles().Single())).Str("handedAt"));
        var lateness = handedAt - at;
        Assert.That(lateness, Is.GreaterThanOrEqualTo(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromSeconds(1)));
    }

    [Test]
    public async Task MessagesOfALine_ShouldGoOutInDueOrder()
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        var t0 = agent.Time.GetUtcNow();
        var offsets = new[] { 30, 10, 20, 10 };
        var ids = new List<string>();
        foreach (var s in offsets)
            ids.Add((await (await api.SendMessageAsync(new { content = $"at {s}", recipientPhone = "+12025550123", scheduledAt = t0.AddSeconds(s).ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id"));

        await agent.AdvanceToAsync(t0.AddSeconds(31));
        await Eventually.TrueAsync(() => agent.OutboxFiles().Length == 4, "four sends");

        var order = agent.OutboxFiles()
            .Select(f => JsonNode.Parse(File.ReadAllText(f))!)
            .OrderBy(j => DateTimeOffset.Parse(j.Str("handedAt"))).ThenBy(j => ids.IndexOf(j.Str("id")))
            .Select(j => ids.IndexOf(j.Str("id")));
        Assert.That(order, Is.EqualTo(new[] { 1, 3, 2, 0 }));
    }

    [Test]
    public async Task CancelAtTheDueTime_ShouldEitherCancelOrSend_NeverBoth()
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        int cancelled = 0, sent = 0;
        for (var i = 0; i < 25; i++)
        {
            var (id, at) = await ScheduleOneSecondAheadAsync(agent, api, $"race {i}");

            var cancel = api.PostAsync($"/api/messages/{id}/cancel", null);
            agent.Time.SetUtcNow(at);
            var response = await cancel;

            var final = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{id}")!,
                m => m.Str("status") is "sent" or "cancelled", "a final state");
            var files = agent.OutboxFileCount(id);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                cancelled++;
                Assert.That(final.Str("status"), Is.EqualTo("cancelled"));
                Assert.That(files, Is.Zero, "cancelled but sent");
            }
            else
            {
                sent++;
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
                Assert.That(final.Str("status"), Is.EqualTo("sent"));
                Assert.That(files, Is.EqualTo(1));
            }
        }
        // Which side wins a true race depends on thread timing; only the consistency above is asserted.
        TestContext.Out.WriteLine($"cancelled {cancelled}, sent {sent}");
    }

    [Test]
    public async Task CancelOneMillisecondBeforeTheDueTime_ShouldWin()
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        var (id, at) = await ScheduleOneSecondAheadAsync(agent, api, "close call");
        agent.Time.SetUtcNow(at.AddMilliseconds(-1));

        await (await api.PostAsync($"/api/messages/{id}/cancel", null)).ExpectAsync(HttpStatusCode.OK);
        await agent.AdvanceToAsync(at.AddSeconds(1));

        Assert.That(agent.OutboxFileCount(id), Is.Zero);
        Assert.That((await api.GetJsonAsync($"/api/messages/{id}")).Str("status"), Is.EqualTo("cancelled"));
    }

    [Test]
    public async Task RescheduleOneMillisecondBeforeTheDueTime_ShouldMoveIt()
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        var (id, at) = await ScheduleOneSecondAheadAsync(agent, api, "close call");
        agent.Time.SetUtcNow(at.AddMilliseconds(-1));

        var later = at.AddMinutes(5);
        await (await api.PatchAsync($"/api/messages/{id}", System.Net.Http.Json.JsonContent.Create(new { scheduledAt = later.ToString("O") })))
            .ExpectAsync(HttpStatusCode.OK);
        await agent.AdvanceToAsync(at.AddSeconds(1));
        Assert.That(agent.OutboxFileCount(id), Is.Zero, "sent at the old time");

        await agent.AdvanceToAsync(later);
        await Eventually.TrueAsync(() => agent.OutboxFileCount(id) == 1, "sent at the new time");
        var handedAt = DateTimeOffset.Parse(JsonNode.Parse(File.ReadAllText(agent.OutboxFiles().Single())).Str("handedAt"));
        Assert.That(handedAt, Is.EqualTo(later));
    }

    [Test]
    public async Task RescheduleAtTheDueTime_ShouldEitherMoveOrSend_NeverBoth()
    {
        using var agent = new AgentFactory();
        using var api = agent.Api();
        int moved = 0;
        for (var i = 0; i < 25; i++)
        {
            var (id, at) = await ScheduleOneSecondAheadAsync(agent, api, $"race {i}");

            var patch = api.PatchAsync($"/api/messages/{id}",
                System.Net.Http.Json.JsonContent.Create(new { scheduledAt = at.AddDays(1).ToString("O") }));
            agent.Time.SetUtcNow(at);
            var response = await patch;

            if (response.StatusCode == HttpStatusCode.OK)
            {
                moved++;
                await Eventually.TrueAsync(() => agent.Dispatcher.SleepingUntil("default") is not null, "worker asleep again");
                var m = await api.GetJsonAsync($"/api/messages/{id}");
                Assert.That(m.Str("status"), Is.EqualTo("scheduled"));
                Assert.That(agent.OutboxFileCount(id), Is.Zero, "rescheduled but sent at the old time");
                await api.PostAsync($"/api/messages/{id}/cancel", null);
            }
            else
            {
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Conflict));
                await Eventually.TrueAsync(() => agent.OutboxFileCount(id) == 1, "sent once");
            }
        }
        TestContext.Out.WriteLine($"moved {moved} of 25");
    }

    /// <summary>Schedules a message 1 s ahead and waits until the worker sleeps until exactly its due time.</summary>
    private static async Task<(string Id, DateTimeOffset At)> ScheduleOneSecondAheadAsync(AgentFactory agent, HttpClient api, string content)
    {
        var at = agent.Time.GetUtcNow().AddSeconds(1);
        var id = (await (await api.SendMessageAsync(new { content, recipientPhone = "+12025550123", scheduledAt = at.ToString("O") }))
            .ExpectAsync(HttpStatusCode.Created)).Str("id");
        await Eventually.TrueAsync(() => agent.Dispatcher.SleepingUntil("default") == at, "worker asleep until the due time");
        return (id, at);
    }

    [Test]
    public async Task TwoDispatchersOnOneDatabase_ShouldSendEveryMessageExactlyOnce()
    {
        using var dir = new TempDir();
        var db = new Db(Path.Combine(dir.Path, "lineagent.db"));
        Migrator.Migrate(db);
        var time = TimeProvider.System;
        var now = time.GetUtcNow();
        await using var writer = new DbWriter(db, Microsoft.Extensions.Logging.Abstractions.NullLogger<DbWriter>.Instance);
        var lifecycle = new MessageLifecycle(writer, new MessageStore(db, new MessageNotifier()), time);
        var rows = Enumerable.Range(0, 300).Select(i => new MessageRow
        {
            Id = Ids.New("msg", now), Content = $"m{i}", Type = "imessage", RequestedType = "imessage", Status = "queued",
            LineId = "default", RecipientPhone = "+12025550123", DueAt = Time.ToMs(now), CreatedAt = Time.ToMs(now), UpdatedAt = Time.ToMs(now),
        }).ToList();
        await lifecycle.AcceptAsync(rows);

        using var a = CoreHost(dir.Path, db);
        using var b = CoreHost(dir.Path, db);
        await Task.WhenAll(a.StartAsync(), b.StartAsync());
        await Eventually.TrueAsync(async () =>
        {
            await using var c = await db.OpenAsync();
            return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages WHERE status = 'sent'") == rows.Count;
        }, "all sent", TimeSpan.FromSeconds(60));
        await Task.WhenAll(a.StopAsync(), b.StopAsync());

        var files = Directory.GetFiles(Path.Combine(dir.Path, "outbox"), "*.json").Select(Path.GetFileName).ToList();
        var perMessage = files.GroupBy(f => f!.Split('.')[0]).ToDictionary(g => g.Key, g => g.Count());
        Assert.That(perMessage.Keys, Is.EquivalentTo(rows.Select(r => r.Id)));
        Assert.That(perMessage.Values.Max(), Is.EqualTo(1), "a message was handed to the channel twice");
        var claims = files.Select(f => JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "outbox", f!))).Str("claim").Split('-')[0]).Distinct().ToList();
        TestContext.Out.WriteLine($"dispatchers that sent: {claims.Count}");
    }

    /// <summary>The agent without HTTP, sharing a database file that another host also uses.</summary>
    private static IHost CoreHost(string dataDir, Db db)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Agent:DataDir"] = dataDir,
            ["Agent:DryRun"] = "true",
        });
        builder.Services.AddLineAgent(builder.Configuration);
        builder.Services.Replace(ServiceDescriptor.Singleton(db));
        return builder.Build();
    }
}
