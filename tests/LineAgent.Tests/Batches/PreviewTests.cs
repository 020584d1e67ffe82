using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using LineAgent.Scheduling;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Batches;

/// <summary>
/// POST /api/messages/bulk/preview against what the dispatcher then does with the same batch (FakeTimeProvider, dry-run
/// outbox with Agent:DryRunPacing). The preview takes each message's jitter at its mean; for the comparison the real
/// pacer's jitter draw is fixed at that mean too (its random part set to 0), so both must agree to the millisecond.
/// </summary>
public sealed class PreviewTests
{
    /// <summary>The real pacer with the random part of the jitter removed: every draw is the mean.</summary>
    private sealed class MeanJitter : PacingJitter
    {
        public override TimeSpan Draw(string key, TimeSpan jitter) => Mean(jitter);
    }

    private static AgentFactory Agent(DateTimeOffset start, Dictionary<string, string?> pacing)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Agent:DryRunPacing"] = "true",
            ["Lines:0:Id"] = "default",
        };
        foreach (var (k, v) in pacing)
            settings["Lines:0:Pacing:" + k] = v;
        return new AgentFactory(time: new FakeTimeProvider(start), settings: settings,
            services: s => s.AddSingleton<PacingJitter>(new MeanJitter()));
    }

    private static async Task ImportAsync(HttpClient api, string tag, IEnumerable<string> rows)
    {
        var csv = "firstName,phone\n" + string.Join("\n", rows);
        var result = await (await api.PostAsync($"/api/leads/import?tags={tag}", new StringContent(csv, Encoding.UTF8, "text/csv"))).ExpectAsync(HttpStatusCode.OK);
        Assert.That(result["skipped"]!.GetValue<long>(), Is.Zero, result.ToJsonString());
    }

    /// <summary>
    /// Moves fake time to <paramref name="target"/> the way the dispatcher would live it: each time to the line's next due
    /// time or hold end (what it sleeps towards, without its 30 s safety wake-ups, in which nothing is due), waiting for it
    /// to act and sleep again.
    /// </summary>
    private static async Task RunDispatcherUntilAsync(AgentFactory agent, DateTimeOffset target)
    {
        var db = agent.Services.GetRequiredService<Db>();
        while (agent.Time.GetUtcNow() < target)
        {
            var sleeping = await Eventually.ValueAsync(() => agent.Dispatcher.SleepingUntil("default"), "the dispatcher to sleep");
            // A send's outcome is written behind the dispatcher; it is what gives a follow-up its due time.
            await Eventually.TrueAsync(async () =>
            {
                await using var c = await db.OpenAsync();
                return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages WHERE status = 'sending'") == 0;
            }, "every outcome written");
            long? next;
            await using (var c = await db.OpenAsync())
                next = await c.ExecuteScalarAsync<long?>(
                    "SELECT MIN(MAX(due_at, COALESCE(not_before, 0))) FROM messages WHERE line_id = 'default' AND status IN ('scheduled','queued')");
            var at = next is { } n && Time.FromMs(n) < target ? Time.FromMs(n) : target;
            if (at <= agent.Time.GetUtcNow())
            {
                // Something is due now: the worker was just woken for it; let it act at this time. Acting may leave it asleep
                // until the same instant as before (a line-wide hold, its wake capped 30 s ahead of a clock that has not
                // moved), so what is waited for is the rows: none due now any more (handed over or held), the worker asleep.
                try
                {
                    await Eventually.TrueAsync(async () =>
                    {
                        if (agent.Dispatcher.SleepingUntil("default") is null)
                            return false;
                        await using var d = await db.OpenAsync();
                        var due = await d.ExecuteScalarAsync<long?>(
                            "SELECT MIN(MAX(due_at, COALESCE(not_before, 0))) FROM messages WHERE line_id = 'default' AND status IN ('scheduled','queued')");
                        return due is null || Time.FromMs(due.Value) > agent.Time.GetUtcNow();
                    }, "the dispatcher to act on what is due");
                }
                catch (AssertionException)
                {
                    // Say what the dispatcher and the rows were doing (how the race above was found).
                    await using var d = await db.OpenAsync();
                    var pending = await d.QueryAsync<(string Id, string Status, long DueAt, long? NotBefore)>(
                        "SELECT id AS Id, status AS Status, due_at AS DueAt, not_before AS NotBefore FROM messages " +
                        "WHERE line_id = 'default' AND status IN ('scheduled','queued','sending') ORDER BY MAX(due_at, COALESCE(not_before, 0)) LIMIT 5");
                    Assert.Fail($"The dispatcher did not act on what is due. now {agent.Time.GetUtcNow():O}, it slept until {sleeping:O} and now " +
                        $"{agent.Dispatcher.SleepingUntil("default"):O}; next due {at:O}; first pending: " +
                        string.Join("; ", pending.Select(r => $"{r.Id} {r.Status} due {Time.FromMs(r.DueAt):O} notBefore {Time.FromMs(r.NotBefore):O}")));
                }
                continue;
            }
            agent.Time.SetUtcNow(at);
            if (at >= sleeping)
                await Eventually.TrueAsync(() => agent.Dispatcher.SleepingUntil("default") is { } s && s != sleeping, "the dispatcher to act and sleep again");
        }
    }

    private static async Task<Dictionary<string, DateTimeOffset?>> HandedAtAsync(AgentFactory agent, string batchId)
    {
        await using var c = await agent.Services.GetRequiredService<Db>().OpenAsync();
        var rows = await c.QueryAsync<(string LeadId, long? HandedAt)>(
            "SELECT lead_id AS LeadId, handed_at AS HandedAt FROM messages WHERE batch_id = @B AND COALESCE(sequence_step, 0) = 0", new { B = batchId });
        return rows.ToDictionary(r => r.LeadId, r => Time.FromMs(r.HandedAt));
    }

    [Test]
    public async Task Preview_OfFiveHundredLeads_ShouldGiveEachTheSecondTheDispatcherThenSendsIt()
    {
        // Friday 12 March 2027, 15:00 in New York (EST); the batch runs over the weekend's DST change into EDT.
        var t0 = new DateTimeOffset(2027, 3, 12, 20, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new()
        {
            ["MinGap"] = "00:00:45", ["Jitter"] = "00:00:30", ["MaxPerHour"] = "30", ["MaxPerDay"] = "150",
            // The issue's line has no new-conversation cap: 500 new conversations at the default 20 a day would take 25 days.
            ["MaxNewConversationsPerDay"] = "0",
            ["Window:From"] = "09:00", ["Window:To"] = "17:00", ["Window:TimeZone"] = "America/New_York",
        });
        using var api = agent.Api();
        await ImportAsync(api, "spring", Enumerable.Range(0, 500).Select(i => $"Lead{i},+1202555{1000 + i}"));
        var body = new { leadFilter = new { tag = "spring" }, content = "Hi {{firstName}}, spring offer inside.", batchId = "batch_500" };

        var preview = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", body)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(await api.GetJsonAsync("/api/messages?limit=1") is { } none && none["items"]!.AsArray().Count == 0, "the preview stores nothing");

        var estimates = preview["messages"]!.AsArray().ToDictionary(m => m.Str("leadId"), m => DateTimeOffset.Parse(m.Str("estimatedSendAt")));
        Assert.That(estimates, Has.Count.EqualTo(500));
        Assert.That(preview["sendable"]!.GetValue<int>(), Is.EqualTo(500));
        Assert.That(DateTimeOffset.Parse(preview.Str("firstSendAt")), Is.EqualTo(t0));
        Assert.That(DateTimeOffset.Parse(preview.Str("lastSendAt")), Is.EqualTo(estimates.Values.Max()));
        var byDay = preview["byDay"]!.AsObject().ToDictionary(d => d.Key, d => d.Value!.GetValue<int>());
        Assert.That(byDay.Values.Sum(), Is.EqualTo(500));
        Assert.That(byDay.Values, Is.All.LessThanOrEqualTo(150));
        Assert.That(byDay.Keys.First(), Is.EqualTo("2027-03-12"));
        Assert.That(preview["byType"]!["imessage"]!.GetValue<int>(), Is.EqualTo(500));

        await (await api.PostAsJsonAsync("/api/messages/bulk", body)).ExpectAsync(HttpStatusCode.Accepted);
        await RunDispatcherUntilAsync(agent, estimates.Values.Max());
        await Eventually.TrueAsync(async () => (await HandedAtAsync(agent, "batch_500")).Values.All(v => v is not null), "all 500 handed over");

        var handed = await HandedAtAsync(agent, "batch_500");
        var wrong = estimates.Where(e => handed[e.Key] != e.Value).Take(5)
            .Select(e => $"{e.Key}: estimated {e.Value:O}, sent {handed[e.Key]:O}").ToList();
        Assert.That(wrong, Is.Empty, "every estimate is the time of the real hand-off");
        var ny = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        Assert.That(handed.Values.Select(h => TimeZoneInfo.ConvertTime(h!.Value, ny).TimeOfDay),
            Is.All.InRange(TimeSpan.FromHours(9), TimeSpan.FromHours(17)), "inside 09:00-17:00 New York time on both sides of DST");
    }

    /// <summary>
    /// A clock between two milliseconds (as a real one nearly always is) on an idle paced line: every lead after the first
    /// had no estimate, because the simulated gap, cut to whole milliseconds, never quite passed.
    /// </summary>
    [Test]
    public async Task Preview_AtAClockBetweenMilliseconds_ShouldEstimateEveryLead()
    {
        var t0 = new DateTimeOffset(2026, 12, 10, 14, 0, 0, TimeSpan.Zero).AddTicks(4_567);
        using var agent = Agent(t0, new() { ["MinGap"] = "00:00:05", ["Jitter"] = "00:00:00", ["MaxPerHour"] = "3", ["MaxNewConversationsPerDay"] = "0" });
        using var api = agent.Api();
        await ImportAsync(api, "pace", Enumerable.Range(0, 5).Select(i => $"Lead{i},+1202555{1000 + i}"));

        var preview = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", new { leadFilter = new { tag = "pace" }, content = "Hi {{firstName}}" }))
            .ExpectAsync(HttpStatusCode.OK);
        var estimates = preview["messages"]!.AsArray().Select(m => m!["estimatedSendAt"]?.GetValue<string>()).ToList();
        Assert.That(estimates, Has.All.Not.Null, preview.ToJsonString());
        var times = estimates.Select(e => DateTimeOffset.Parse(e!)).Order().ToList();
        Assert.That(times[1] - times[0], Is.EqualTo(TimeSpan.FromSeconds(5)).Within(TimeSpan.FromMilliseconds(1)));
        Assert.That(times[2] - times[1], Is.EqualTo(TimeSpan.FromSeconds(5)).Within(TimeSpan.FromMilliseconds(1)));
        Assert.That(times[3] - times[0], Is.GreaterThanOrEqualTo(TimeSpan.FromHours(1)), "three an hour");
    }

    [Test]
    public async Task Preview_BeyondFourHundredDays_ShouldLeaveTheEstimateNull_AndCountThem()
    {
        var t0 = new DateTimeOffset(2026, 12, 10, 14, 0, 0, TimeSpan.Zero);
        using var agent = Agent(t0, new() { ["MaxPerDay"] = "1" });
        using var api = agent.Api();
        await ImportAsync(api, "slow", Enumerable.Range(0, 450).Select(i => $"Lead{i},+1202556{i:0000}"));

        var preview = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", new { leadFilter = new { tag = "slow" }, content = "Hi {{firstName}}" }))
            .ExpectAsync(HttpStatusCode.OK);

        var estimates = preview["messages"]!.AsArray().Select(m => m!["estimatedSendAt"]?.GetValue<string>()).ToList();
        var beyond = estimates.Count(e => e is null);
        Assert.That(beyond, Is.InRange(48, 50), "one a day: about 400 of the 450 within 400 days");
        Assert.That(preview["beyondHorizon"]!.GetValue<int>(), Is.EqualTo(beyond));
        Assert.That(preview["sendable"]!.GetValue<int>(), Is.EqualTo(450));
        var last = DateTimeOffset.Parse(preview.Str("lastSendAt"));
        Assert.That(last, Is.LessThanOrEqualTo(t0 + PacingSimulation.Horizon).And.GreaterThan(t0 + PacingSimulation.Horizon - TimeSpan.FromDays(2)));
        Assert.That(preview["byDay"]!.AsObject().Sum(d => d.Value!.GetValue<int>()), Is.EqualTo(450 - beyond));
    }

    [Test]
    public async Task Preview_ShouldCountWhatIsAlreadyQueued_NewConversations_RecipientHours_AndFollowUps()
    {
        var t0 = new DateTimeOffset(2026, 12, 10, 14, 0, 0, TimeSpan.Zero); // 09:00 in New York
        using var agent = Agent(t0, new()
        {
            ["MinGap"] = "00:02:00", ["Jitter"] = "00:01:00", ["MaxPerHour"] = "12", ["MaxPerDay"] = "40", ["MaxNewConversationsPerDay"] = "6",
            ["Window:From"] = "09:00", ["Window:To"] = "17:00", ["Window:TimeZone"] = "America/New_York",
        });
        using var api = agent.Api();
        // Two already written to (not new conversations), then queued work of other senders on the line.
        await (await api.SendMessageAsync(new { content = "earlier", recipientPhone = "+12025551000" })).ExpectAsync(HttpStatusCode.Created);
        await (await api.SendMessageAsync(new { content = "earlier", recipientPhone = "+12025551001" })).ExpectAsync(HttpStatusCode.Accepted);
        for (var i = 0; i < 4; i++)
            await (await api.SendMessageAsync(new { content = $"queued {i}", recipientPhone = $"+1202555190{i}" })).ExpectAsync(HttpStatusCode.Accepted);
        // Sydney numbers get the recipient window; the rest have New York hours anyway.
        await ImportAsync(api, "mixed", Enumerable.Range(0, 16).Select(i => i % 4 == 3 ? $"Syd{i},+61291234{500 + i}" : $"Lead{i},+1202555{1000 + i}"));
        var body = new
        {
            leadFilter = new { tag = "mixed" }, content = "Hi {{firstName}}", batchId = "batch_mixed",
            // Sydney's 06:00-20:00 meets the line's New York hours only from 19:00 to 22:00 UTC.
            recipientWindow = new { from = "06:00", to = "20:00" },
            followUps = new[] { new { after = "PT3H", content = "Following up, {{firstName}}" } },
        };

        var preview = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", body)).ExpectAsync(HttpStatusCode.OK);
        Assert.That(preview["alreadyQueued"]!.GetValue<int>(), Is.EqualTo(5));
        var entries = preview["messages"]!.AsArray().ToDictionary(m => m.Str("leadId"), m => m!);
        var sydney = entries.Values.Where(e => e.Str("content").StartsWith("Hi Syd", StringComparison.Ordinal)).ToList();
        Assert.That(sydney.Select(e => e.Str("recipientTimeZone")), Is.All.EqualTo("Australia/Sydney"));
        Assert.That(sydney.Select(e => e.Str("recipientTimeZoneSource")), Is.All.EqualTo("number"));

        await (await api.PostAsJsonAsync("/api/messages/bulk", body)).ExpectAsync(HttpStatusCode.Accepted);
        var last = entries.Values.SelectMany(e => new[] { e["estimatedSendAt"] }.Concat(e["followUps"]!.AsArray().Select(f => f!["estimatedSendAt"])))
            .Select(v => DateTimeOffset.Parse(v!.GetValue<string>())).Max();
        await RunDispatcherUntilAsync(agent, last);

        await using var c = await agent.Services.GetRequiredService<Db>().OpenAsync();
        var rows = (await c.QueryAsync<(string LeadId, int Step, long? HandedAt)>(
            "SELECT lead_id AS LeadId, sequence_step AS Step, handed_at AS HandedAt FROM messages WHERE batch_id = 'batch_mixed'")).ToList();
        Assert.That(rows, Has.Count.EqualTo(32));
        foreach (var (leadId, step, handedAt) in rows)
        {
            var estimate = step == 0 ? entries[leadId]["estimatedSendAt"] : entries[leadId]["followUps"]![0]!["estimatedSendAt"];
            Assert.That(Time.FromMs(handedAt), Is.EqualTo(DateTimeOffset.Parse(estimate!.GetValue<string>())), $"lead {leadId} step {step}");
        }
    }

    [Test]
    public async Task Preview_ShouldAnswerLikeBulk_ForABodyBulkRefuses()
    {
        using var agent = Agent(DateTimeOffset.Parse("2026-12-10T14:00:00Z"), new());
        using var api = agent.Api();
        var problem = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", new
        {
            leadIds = new[] { "lead_x" }, content = "Hi {{fristName}}", recipientWindow = new { from = "9", to = "20:00" },
        })).ExpectAsync(HttpStatusCode.BadRequest);
        Assert.That(problem.ProblemCodes(), Is.SupersetOf(new[] { "invalid_template", "invalid_window" }));
    }
}
