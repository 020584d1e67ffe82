using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using Dapper;
using LineAgent.Channels;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Moq;

namespace LineAgent.Tests.Scheduling;

/// <summary>What a restart does with the previous run's leftovers.</summary>
public sealed class RecoveryTests
{
    private static readonly DateTimeOffset T0 = AgentFactory.Epoch;

    private static MessageRow Row(string content, string status, long dueAt, string? channel = null, bool handed = false, long? scheduledAt = null) => new()
    {
        Id = Ids.New("msg", T0), Content = content, Type = "imessage", RequestedType = "imessage", Status = status,
        LineId = "default", RecipientPhone = "+12025550123", DueAt = dueAt, ScheduledAt = scheduledAt,
        CreatedAt = Time.ToMs(T0), UpdatedAt = Time.ToMs(T0),
        Claim = status == "sending" ? "old-run-claim" : null, ClaimedAt = status == "sending" ? Time.ToMs(T0) : null,
        HandedAt = handed ? Time.ToMs(T0) : null, Channel = channel, DryRun = channel == "dry-run",
    };

    /// <summary>Writes rows straight into a data directory's database, as a crashed run would have left them.</summary>
    private static async Task SeedAsync(TempDir dir, params MessageRow[] rows)
    {
        var db = new Db(dir.File("lineagent.db"));
        Migrator.Migrate(db);
        await using var c = await db.OpenAsync();
        foreach (var r in rows)
        {
            await c.ExecuteAsync(MessageSql.Insert, r);
            await c.ExecuteAsync("UPDATE messages SET claim = @Claim, claimed_at = @ClaimedAt, handed_at = @HandedAt WHERE id = @Id", r);
        }
    }

    [Test]
    public async Task Restart_ShouldSettleSendingRows_WithoutSendingAnyTwice()
    {
        using var dir = new TempDir();
        var alreadyInOutbox = Row("handed and written", "sending", Time.ToMs(T0), "dry-run", handed: true);
        var handedNoFile = Row("handed, no file", "sending", Time.ToMs(T0), "dry-run", handed: true);
        var claimedOnly = Row("claimed only", "sending", Time.ToMs(T0));
        await SeedAsync(dir, alreadyInOutbox, handedNoFile, claimedOnly);
        Directory.CreateDirectory(dir.File("outbox"));
        File.WriteAllText(dir.File($"outbox/{alreadyInOutbox.Id}.old-run-claim.json"), "{}");
        File.WriteAllText(dir.File($"outbox/.{handedNoFile.Id}.{Guid.NewGuid():N}.tmp"), "{"); // killed before its rename

        using var agent = new AgentFactory(dir);
        using var api = agent.Api();

        foreach (var r in new[] { alreadyInOutbox, handedNoFile, claimedOnly })
            await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{r.Id}")!, m => m.Str("status") == "sent", $"{r.Content} sent");
        Assert.That(agent.OutboxFileCount(alreadyInOutbox.Id), Is.EqualTo(1), "found in the outbox: must not be sent again");
        Assert.That(agent.OutboxFileCount(handedNoFile.Id), Is.EqualTo(1));
        Assert.That(agent.OutboxFileCount(claimedOnly.Id), Is.EqualTo(1));

        var events = await api.GetJsonAsync($"/api/messages/{alreadyInOutbox.Id}");
        Assert.That(events.Str("channelRef"), Does.Contain("old-run-claim"));
        Assert.That(Directory.GetFiles(dir.File("outbox"), ".*.tmp"), Is.Empty, "the temp file a crash left is removed (probe: left for good)");
    }

    /// <summary>
    /// A message due hours ago that waited (pacing, a window, a cap) and was then handed off, or claimed, just before a crash
    /// is queued again and goes out: it is not failed `missed_schedule` ("the agent was not running at the scheduled time")
    /// for its old due time (review). One handed off longer than MaxLateness before the restart still is.
    /// </summary>
    [Test]
    public async Task Restart_ShouldSendAHeldMessageCutOffJustAfterItsHandOff_NotFailItAsMissed()
    {
        using var dir = new TempDir();
        var dueLongAgo = Time.ToMs(T0.AddHours(-3));
        MessageRow Held(string content, bool handed, TimeSpan onItsWayAgo)
        {
            var row = Row(content, "sending", dueLongAgo, handed ? "dry-run" : null, handed, scheduledAt: dueLongAgo);
            row.ClaimedAt = Time.ToMs(T0 - onItsWayAgo);
            row.HandedAt = handed ? row.ClaimedAt : null;
            return row;
        }
        var handedJustBefore = Held("handed off 5 s before the crash", handed: true, TimeSpan.FromSeconds(5));
        var claimedJustBefore = Held("claimed 5 s before the crash", handed: false, TimeSpan.FromSeconds(5));
        var handedLongBefore = Held("handed off 2 h before the restart", handed: true, TimeSpan.FromHours(2));
        await SeedAsync(dir, handedJustBefore, claimedJustBefore, handedLongBefore);

        using var agent = new AgentFactory(dir);
        using var api = agent.Api();
        foreach (var r in new[] { handedJustBefore, claimedJustBefore })
            await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{r.Id}")!, m => m.Str("status") is "sent" or "failed", $"{r.Content} settled");
        foreach (var r in new[] { handedJustBefore, claimedJustBefore })
        {
            var m = await api.GetJsonAsync($"/api/messages/{r.Id}");
            Assert.That(m.Str("status"), Is.EqualTo("sent"), m.ToJsonString());
            Assert.That(agent.OutboxFileCount(r.Id), Is.EqualTo(1));
        }
        var late = await api.GetJsonAsync($"/api/messages/{handedLongBefore.Id}");
        Assert.That((late.Str("status"), late["error"].Str("code")), Is.EqualTo(("failed", "missed_schedule")), late.ToJsonString());
        Assert.That(agent.OutboxFileCount(handedLongBefore.Id), Is.Zero);
    }

    [Test]
    public async Task Restart_ShouldFailAsInterrupted_WhenTheChannelCannotTell()
    {
        using var dir = new TempDir();
        var unknown = Row("maybe sent", "sending", Time.ToMs(T0), "mock-channel", handed: true);
        await SeedAsync(dir, unknown);
        var smtp = new Mock<IMessageChannel>();
        smtp.SetupGet(c => c.Name).Returns("mock-channel");
        smtp.Setup(c => c.Handles(It.IsAny<LineOptions>(), It.IsAny<string>())).Returns(false);
        smtp.Setup(c => c.ReconcileAsync(It.IsAny<SendRequest>(), It.IsAny<CancellationToken>()))
            .ReturnsAsync(new ReconcileOutcome.Unknown("the server closed after DATA"));

        using var agent = new AgentFactory(dir, services: s => s.AddSingleton(smtp.Object),
            settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "false" });
        using var api = agent.Api();

        var m = await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{unknown.Id}")!, x => x.Str("status") != "sending", "settled");
        Assert.That(m.Str("status"), Is.EqualTo("failed"));
        Assert.That(m["error"].Str("code"), Is.EqualTo("interrupted"));
        Assert.That(m["error"].Str("message"), Does.Contain("the server closed after DATA"));
        smtp.Verify(c => c.SendAsync(It.IsAny<SendRequest>(), It.IsAny<CancellationToken>()), Times.Never);
    }

    [Test]
    public async Task Restart_ShouldFailSchedulesMissedByMoreThanMaxLateness_AndSendTheRest()
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        string tooLate, lateButOk, future;
        using (var first = new AgentFactory(dir, time))
        using (var api = first.Api())
        {
            async Task<string> Schedule(TimeSpan after) =>
                (await (await api.SendMessageAsync(new { content = $"at +{after}", recipientPhone = "+12025550123", scheduledAt = T0.Add(after).ToString("O") }))
                    .ExpectAsync(HttpStatusCode.Created)).Str("id");
            tooLate = await Schedule(TimeSpan.FromMinutes(10));
            lateButOk = await Schedule(TimeSpan.FromMinutes(90));
            future = await Schedule(TimeSpan.FromHours(5));
        }

        // The agent was down for two hours.
        time.SetUtcNow(T0.AddHours(2));
        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();

        var missed = await api2.GetJsonAsync($"/api/messages/{tooLate}");
        Assert.That(missed.Str("status"), Is.EqualTo("failed"));
        Assert.That(missed["error"].Str("code"), Is.EqualTo("missed_schedule"));
        await Eventually.ValueAsync(() => api2.GetJsonAsync($"/api/messages/{lateButOk}")!, m => m.Str("status") == "sent", "late one sent");
        Assert.That((await api2.GetJsonAsync($"/api/messages/{future}")).Str("status"), Is.EqualTo("scheduled"));
        Assert.That(second.OutboxFileCount(tooLate), Is.Zero);
    }

    /// <summary>
    /// A follow-up that fell due while the agent was down (the Mac asleep) goes out when it is back: its time was "an hour
    /// after the first message", not one someone chose. It failed `missed_schedule` and stopped the sequence (probe).
    /// </summary>
    [Test]
    public async Task Restart_ShouldSendAFollowUpThatFellDueWhileTheAgentWasDown_NotFailItAsMissed()
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        string sequenceId;
        using (var first = new AgentFactory(dir, time))
        using (var api = first.Api())
        {
            var sent = await (await api.SendMessageAsync(new
            {
                content = "Hi Ana", recipientPhone = "+12025550123",
                followUps = new[] { new { after = "PT1H", content = "Following up" }, new { after = "PT1H", content = "Last one" } },
            })).ExpectAsync(HttpStatusCode.Created);
            sequenceId = sent.Str("sequenceId");
            Assert.That(sent.Str("status"), Is.EqualTo("sent"));
        }

        // Down for three hours: step 1 was due at +1 h, two hours before the restart (MaxLateness is one hour).
        time.SetUtcNow(T0.AddHours(3));
        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();
        var steps = await Eventually.ValueAsync(async () => (await api2.GetJsonAsync($"/api/messages?limit=10"))["items"]!.AsArray()
                .Where(m => m.Str("sequenceId") == sequenceId).ToList(),
            all => all.Any(m => m!["sequenceStep"]!.GetValue<int>() == 1 && m.Str("status") is "sent" or "failed"), "step 1 settled");
        var step1 = steps.Single(m => m!["sequenceStep"]!.GetValue<int>() == 1)!;
        Assert.That(step1.Str("status"), Is.EqualTo("sent"), step1.ToJsonString());
        var step2 = steps.Single(m => m!["sequenceStep"]!.GetValue<int>() == 2)!;
        Assert.That(step2.Str("status"), Is.EqualTo("scheduled"), "the next step is due an hour after step 1 went out: " + step2.ToJsonString());

        // A step whose time was PATCHed has a chosen time: missed by more than MaxLateness while down, it fails (review).
        var chosen = time.GetUtcNow().AddMinutes(30);
        await (await api2.PatchAsJsonAsync($"/api/messages/{step2.Str("id")}", new { scheduledAt = chosen.ToString("O") })).ExpectAsync(HttpStatusCode.OK);
        second.Dispose();
        time.SetUtcNow(chosen.AddHours(2));
        using var third = new AgentFactory(dir, time);
        using var api3 = third.Api();
        var missed = await api3.GetJsonAsync($"/api/messages/{step2.Str("id")}");
        Assert.That((missed.Str("status"), missed["error"]?.Str("code")), Is.EqualTo(("failed", "missed_schedule")), missed.ToJsonString());
    }

    [Test]
    public async Task Restart_ShouldLeaveTheSchedulesOfAPausedLine_ForItsResume()
    {
        // Without a restart a paused line's messages wait for its resume; a restart in between must not fail them as
        // 'missed_schedule' ("the agent was not running": it was, the line was paused).
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        string id;
        using (var first = new AgentFactory(dir, time))
        using (var api = first.Api())
        {
            id = (await (await api.SendMessageAsync(new { content = "while paused", recipientPhone = "+12025550123", scheduledAt = T0.AddMinutes(10).ToString("O") }))
                .ExpectAsync(HttpStatusCode.Created)).Str("id");
            await (await api.PatchAsJsonAsync("/api/lines/default", new { active = false })).ExpectAsync(HttpStatusCode.OK);
        }

        time.SetUtcNow(T0.AddHours(2));
        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();
        Assert.That((await api2.GetJsonAsync($"/api/messages/{id}")).Str("status"), Is.EqualTo("scheduled"));
        await (await api2.PatchAsJsonAsync("/api/lines/default", new { active = true })).ExpectAsync(HttpStatusCode.OK);
        await Eventually.ValueAsync(() => api2.GetJsonAsync($"/api/messages/{id}")!, m => m.Str("status") == "sent", "sent once the line resumed");
    }

    [Test]
    public async Task ARestoredBackup_ShouldNotSendAgain_WhatWasDueBeforeTheRestore()
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        string early, late;
        // No scheduled backup of its own: the one below must be the newest, the one restore picks.
        using (var first = new AgentFactory(dir, time, settings: new Dictionary<string, string?> { ["Storage:BackupEvery"] = "00:00:00" }))
        using (var api = first.Api())
        {
            async Task<string> Schedule(string content, TimeSpan after) =>
                (await (await api.SendMessageAsync(new { content, recipientPhone = "+12025550123", scheduledAt = T0.Add(after).ToString("O") }))
                    .ExpectAsync(HttpStatusCode.Created)).Str("id");
            early = await Schedule("early", TimeSpan.FromMinutes(10));
            late = await Schedule("late", TimeSpan.FromHours(3));
            DatabaseBackups.Create(dir.File("lineagent.db"), T0.AddMinutes(1), keep: 7); // 'early' is still scheduled in it
            await first.AdvanceToAsync(T0.AddMinutes(11));
            await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{early}")!, m => m.Str("status") == "sent", "early sent");
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        // The database is gone (not just damaged): nothing tells what became of 'early' after the backup.
        foreach (var file in Directory.GetFiles(dir.Path, "lineagent.db*"))
            File.Delete(file);

        var output = RestoreAt(dir, time, T0.AddMinutes(30));
        Assert.That(output, Does.Contain("1 other pending message(s) in it were due before now").And.Contain("1 message(s) are scheduled after now")
            .And.Contain("2 pending message(s) in it could not be checked against the database it replaces (there is no"));

        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();
        var again = await api2.GetJsonAsync($"/api/messages/{early}");
        Assert.That((again.Str("status"), again["error"].Str("code")), Is.EqualTo(("failed", "restored")), again.ToJsonString());
        Assert.That(second.OutboxFileCount(early), Is.EqualTo(1), "sent once, before the restore; not again");
        Assert.That((await api2.GetJsonAsync($"/api/messages/{late}")).Str("status"), Is.EqualTo("scheduled"));
        var retry = await (await api2.PostAsync($"/api/messages/{early}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(retry.Str("code"), Is.EqualTo("maybe_sent"));
    }

    /// <summary>
    /// A restore reads the backup's pending messages back from the database it replaces: one moved earlier and sent after
    /// the backup is not sent again at its old time (a race probe sent it twice: two outbox files), one cancelled after
    /// the backup stays cancelled, one edited is counted, the rest go out as planned.
    /// </summary>
    [TestCase(1)]
    [TestCase(2)]
    public async Task ARestoredBackup_ShouldNotSendAgain_AMessageMovedEarlierAndSentAfterTheBackup_NorOneCancelledAfterIt(int restores)
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        string moved, cancelled, edited, untouched, movedSentAt;
        var planned = T0.AddHours(3);
        using (var first = new AgentFactory(dir, time, settings: new Dictionary<string, string?> { ["Storage:BackupEvery"] = "00:00:00" }))
        using (var api = first.Api())
        {
            async Task<string> Schedule(string content) =>
                (await (await api.SendMessageAsync(new { content, recipientPhone = "+12025550123", scheduledAt = planned.ToString("O") }))
                    .ExpectAsync(HttpStatusCode.Created)).Str("id");
            moved = await Schedule("moved");
            cancelled = await Schedule("cancelled");
            edited = await Schedule("edited");
            untouched = await Schedule("untouched");
            DatabaseBackups.Create(dir.File("lineagent.db"), T0.AddMinutes(1), keep: 7); // all four scheduled at +3 h in it
            time.Advance(TimeSpan.FromMinutes(2));
            await (await api.PatchAsJsonAsync($"/api/messages/{moved}", new { scheduledAt = T0.AddMinutes(10).ToString("O") })).ExpectAsync(HttpStatusCode.OK);
            await (await api.PostAsync($"/api/messages/{cancelled}/cancel", null)).ExpectAsync(HttpStatusCode.OK);
            await (await api.PatchAsJsonAsync($"/api/messages/{edited}", new { content = "edited, after the backup" })).ExpectAsync(HttpStatusCode.OK);
            await first.AdvanceToAsync(T0.AddMinutes(11));
            movedSentAt = (await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{moved}")!, m => m.Str("status") == "sent", "moved sent")).Str("sentAt");
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();

        // A second restore before the agent starts (--yes again, another --from) compares with the first one's copy: it
        // must keep what the first found, not forget it.
        var output = "";
        for (var i = 0; i < restores; i++)
            output = RestoreAt(dir, time, T0.AddMinutes(30));
        Assert.That(output, Does.Contain("1 pending message(s) in it were sent after the backup")
            .And.Contain("1 pending message(s) in it were cancelled after the backup")
            .And.Contain("2 message(s) are scheduled after now and will be sent")
            .And.Not.Contain("could not be checked").And.Not.Contain("were due before now"));
        if (restores == 1)
            Assert.That(output, Does.Contain("; 1 pending message(s) had been changed after the backup"));

        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();
        var again = await api2.GetJsonAsync($"/api/messages/{moved}");
        Assert.That(again.Str("status"), Is.EqualTo("sent"), again.ToJsonString());
        Assert.That(again.Str("sentAt"), Is.EqualTo(movedSentAt), "when it went out, as the replaced database has it");
        Assert.That((await api2.GetJsonAsync($"/api/messages/{cancelled}")).Str("status"), Is.EqualTo("cancelled"));
        await second.AdvanceToAsync(planned.AddMinutes(1));
        foreach (var id in new[] { edited, untouched })
            await Eventually.ValueAsync(() => api2.GetJsonAsync($"/api/messages/{id}")!, m => m.Str("status") == "sent", "sent as planned");
        Assert.That(second.OutboxFileCount(moved), Is.EqualTo(1), "sent once, after the backup; not again at its old time");
        Assert.That(second.OutboxFileCount(cancelled), Is.Zero);
        Assert.That((await api2.GetJsonAsync($"/api/messages/{moved}")).Str("status"), Is.EqualTo("sent"));
    }

    /// <summary>
    /// A handed-off Messages send without a stored script baseline is taken after a crash as one whose script never started
    /// (MessagesChannel.ReconcileAsync: sent again). In a restored backup that is not so: the send may have gone out after
    /// the backup was taken. The restore marks it as a send whose script may have started (review).
    /// </summary>
    [Test]
    public async Task ARestoredBackup_ShouldNotTakeAHandedOffMessagesSend_AsNeverStarted()
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        var waiting = Row("waiting at the Messages gate", "sending", Time.ToMs(T0), "messages", handed: true);
        var claimedOnly = Row("claimed, not handed off", "sending", Time.ToMs(T0));
        await SeedAsync(dir, waiting, claimedOnly);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        DatabaseBackups.Create(dir.File("lineagent.db"), T0.AddMinutes(1), keep: 7);
        foreach (var file in Directory.GetFiles(dir.Path, "lineagent.db*"))
            File.Delete(file);

        RestoreAt(dir, time, T0.AddMinutes(30));

        var db = new Db(dir.File("lineagent.db"));
        await using var c = await db.OpenAsync();
        var baselines = (await c.QueryAsync<(string Id, long? Baseline)>("SELECT id, script_baseline FROM messages")).ToDictionary(x => x.Id, x => x.Baseline);
        Assert.That(baselines[waiting.Id], Is.EqualTo(MessageRow.BaselineUnread), "may have gone out after the backup");
        Assert.That(baselines[claimedOnly.Id], Is.Null, "never handed off: released at the start, as before");
    }

    /// <summary>`lineagent restore --yes` at <paramref name="at"/>, as the CLI runs it; its output (it must succeed).</summary>
    private static string RestoreAt(TempDir dir, Microsoft.Extensions.Time.Testing.FakeTimeProvider time, DateTimeOffset at)
    {
        time.SetUtcNow(at);
        var output = new StringWriter();
        Assert.That(new DatabaseRestore(dir.Path, output, output, time).Run(from: null), Is.Zero, output.ToString());
        TestContext.Out.WriteLine(output);
        return output.ToString();
    }

    /// <summary>
    /// A two-step sequence scheduled at T0 + 3 h, a backup at T0 + 1 min (both steps pending in it), then step 0 moved to
    /// T0 + 10 min and the clock run to <paramref name="runTo"/> until step <paramref name="untilStep"/> is sent: what goes
    /// out after the backup. The agent is stopped before it returns.
    /// </summary>
    private static async Task<(string Step0, string Step1, DateTimeOffset Step0SentAt)> SequenceSentAfterABackupAsync(
        TempDir dir, Microsoft.Extensions.Time.Testing.FakeTimeProvider time, string after, DateTimeOffset runTo, int untilStep)
    {
        using var first = new AgentFactory(dir, time, settings: new Dictionary<string, string?> { ["Storage:BackupEvery"] = "00:00:00" });
        using var api = first.Api();
        var sent = await (await api.SendMessageAsync(new
        {
            content = "Hi", recipientPhone = "+12025550123", scheduledAt = T0.AddHours(3).ToString("O"),
            followUps = new[] { new { after, content = "Any thoughts?" } },
        })).ExpectAsync(HttpStatusCode.Created);
        var steps = (await api.GetJsonAsync($"/api/sequences/{sent.Str("sequenceId")}"))["steps"]!.AsArray();
        var ids = new[] { steps[0].Str("id"), steps[1].Str("id") };
        DatabaseBackups.Create(dir.File("lineagent.db"), T0.AddMinutes(1), keep: 7);
        time.Advance(TimeSpan.FromMinutes(2));
        await (await api.PatchAsJsonAsync($"/api/messages/{ids[0]}", new { scheduledAt = T0.AddMinutes(10).ToString("O") })).ExpectAsync(HttpStatusCode.OK);
        await first.AdvanceToAsync(runTo);
        await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{ids[untilStep]}")!, m => m.Str("status") == "sent", $"step {untilStep} sent");
        var sentAt = DateTimeOffset.Parse((await api.GetJsonAsync($"/api/messages/{ids[0]}")).Str("sentAt"), System.Globalization.CultureInfo.InvariantCulture);
        return (ids[0], ids[1], sentAt);
    }

    /// <summary>
    /// Both steps of a sequence sent after the backup, the second unreadable in the replaced file (here: its row gone):
    /// restoring step 0 as sent gives step 1 a due time before the restore, and step 1 may have gone out too, so it is
    /// failed `restored`, not sent a second time (a review found it sent again).
    /// </summary>
    [Test]
    public async Task ARestoredBackup_ShouldNotSendAgain_AFollowUpDueBeforeTheRestore_ThatTheReplacedFileCannotTell()
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        var (step0, step1, _) = await SequenceSentAfterABackupAsync(dir, time, "PT5M", T0.AddMinutes(17), untilStep: 1);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={dir.File("lineagent.db")};Pooling=False;Foreign Keys=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"DELETE FROM messages WHERE id = '{step1}'";
            Assert.That(cmd.ExecuteNonQuery(), Is.EqualTo(1));
        }
        RestoreAt(dir, time, T0.AddMinutes(30));

        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();
        await second.AdvanceToAsync(T0.AddMinutes(32));
        Assert.That((await api2.GetJsonAsync($"/api/messages/{step0}")).Str("status"), Is.EqualTo("sent"));
        var s1 = await api2.GetJsonAsync($"/api/messages/{step1}");
        Assert.That((s1.Str("status"), s1["error"].Str("code")), Is.EqualTo(("failed", "restored")), s1.ToJsonString());
        Assert.That(second.OutboxFileCount(step1), Is.EqualTo(1), "step 1 went out once, after the backup; not again after the restore");
    }

    /// <summary>
    /// A sequence's first step sent after the backup: restored as sent, its follow-up is due from that send, not
    /// cancelled as if the step had failed (a review found it cancelled `sequence_stopped`).
    /// </summary>
    [Test]
    public async Task ARestoredBackup_WhoseSequenceStepWasSentAfterIt_ShouldKeepTheFollowUp()
    {
        using var dir = new TempDir();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(T0);
        var (step0, step1, sentAt) = await SequenceSentAfterABackupAsync(dir, time, "P1D", T0.AddMinutes(11), untilStep: 0);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        RestoreAt(dir, time, T0.AddMinutes(30));

        using var second = new AgentFactory(dir, time);
        using var api2 = second.Api();
        Assert.That((await api2.GetJsonAsync($"/api/messages/{step0}")).Str("status"), Is.EqualTo("sent"));
        var next = await api2.GetJsonAsync($"/api/messages/{step1}");
        Assert.That(next.Str("status"), Is.EqualTo("scheduled"), next.ToJsonString());
        Assert.That(DateTimeOffset.Parse(next.Str("scheduledAt"), System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(sentAt.AddDays(1)),
            "a day after step 0 went out");
        Assert.That(second.OutboxFileCount(step0), Is.EqualTo(1));
    }

    [Test]
    public void SecondAgentOnTheSameDataDir_ShouldRefuseToStart()
    {
        using var dir = new TempDir();
        using var first = new AgentFactory(dir);
        first.Api().Dispose();

        var error = Assert.Throws<LineAgent.Hosting.StartupRefusedException>(() =>
            new LineAgent.Hosting.DataDirLock(new LineAgent.Hosting.DataDirectory(dir.Path), TimeSpan.FromMilliseconds(300)));
        Assert.That(error!.Message, Does.Contain("already running").And.Contain(dir.Path));
    }

    [Test]
    public async Task AStartWhileTheLastAgentStillStops_ShouldWaitForItsLock()
    {
        // In-process hosts release the lock when their disposal finishes on the entry point's thread, which raced the next
        // test's start (MessageLifecycleTests.Restart_ShouldFailPendingMessagesOfALineThatIsGone failed so in CI); launchd's
        // restart of an agent that is still stopping is the same case.
        using var dir = new TempDir();
        var data = new LineAgent.Hosting.DataDirectory(dir.Path);
        var held = new LineAgent.Hosting.DataDirLock(data, TimeSpan.Zero);
        var next = Task.Run(() => new LineAgent.Hosting.DataDirLock(data, TimeSpan.FromSeconds(30)));
        Assert.That(next.IsCompleted, Is.False, () => $"it waits while the lock is held: {next.Status} {next.Exception}");
        held.Dispose();
        using var taken = await next.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Throws<LineAgent.Hosting.StartupRefusedException>(() => new LineAgent.Hosting.DataDirLock(data, TimeSpan.Zero), "the waiter holds it now");
    }

    [Test]
    public async Task AChannelThatThrowsAfterTheHandOff_ShouldFailChannelError_AndARetryShouldNeedForce()
    {
        // What the channel did before it threw is unknown: like `unconfirmed`, resending it could send it twice.
        var mail = new Mock<IMessageChannel>();
        mail.SetupGet(c => c.Name).Returns("mock-mail");
        mail.SetupGet(c => c.Capabilities).Returns(ChannelCapabilities.Immediate);
        mail.Setup(c => c.Handles(It.IsAny<LineOptions>(), "email")).Returns(true);
        mail.Setup(c => c.SendAsync(It.IsAny<SendRequest>(), It.IsAny<CancellationToken>()))
            .ThrowsAsync(new InvalidOperationException("the socket was in an unexpected state"));
        using var agent = new AgentFactory(services: s => s.AddSingleton(mail.Object),
            settings: new Dictionary<string, string?> { ["Agent:DryRun"] = "false" });
        using var api = agent.Api();

        var problem = await (await api.SendMessageAsync(new { content = "did it go?", recipientEmail = "ana@example.com" }))
            .ExpectAsync(HttpStatusCode.InternalServerError);
        var message = problem["message"]!;
        Assert.That(message["error"].Str("code"), Is.EqualTo("channel_error"));
        Assert.That(message["error"].Str("message"), Does.Contain("may have been sent"));

        var retry = await (await api.PostAsync($"/api/messages/{message.Str("id")}/retry", null)).ExpectAsync(HttpStatusCode.Conflict);
        Assert.That(retry.Str("code"), Is.EqualTo("maybe_sent"));
        mail.Verify(c => c.SendAsync(It.IsAny<SendRequest>(), It.IsAny<CancellationToken>()), Times.Once);
    }

    [Test]
    public async Task ARecoveryTheDatabaseRefuses_ShouldNotStopTheAgent_AndNothingShouldBeSentBeforeItSucceeds()
    {
        // On a Mac: a full disk at start. Here a trigger refuses every UPDATE of messages, so recovery cannot requeue
        // the row a crashed run claimed. Before, the exception stopped the host (launchd restarts it every 10 s, and
        // /api/status never answered).
        using var dir = new TempDir();
        var leftover = Row("claimed by a run that crashed", "sending", Time.ToMs(T0));
        var due = Row("due now", "queued", Time.ToMs(T0));
        await SeedAsync(dir, leftover, due);
        await using (var c = await new Db(dir.File("lineagent.db")).OpenAsync())
            await c.ExecuteAsync("CREATE TRIGGER refuse_updates BEFORE UPDATE ON messages WHEN OLD.status = 'sending' BEGIN SELECT RAISE(ABORT, 'disk trouble'); END");

        using var agent = new AgentFactory(dir);
        using var api = agent.Api();
        Assert.That((await api.GetJsonAsync($"/api/messages/{leftover.Id}")).Str("status"), Is.EqualTo("sending"), "the agent answers");
        // The due row could be claimed (the trigger refuses only the recovery's update): the dispatcher waits for recovery.
        Assert.That((await api.GetJsonAsync($"/api/messages/{due.Id}")).Str("status"), Is.EqualTo("queued"));
        Assert.That(agent.Dispatcher.SleepingUntil("default"), Is.Null, "the line's worker has not started");
        Assert.That(agent.OutboxFiles(), Is.Empty);
        // /api/status says that nothing is sent, and why (the storage itself is fine: only that update is refused).
        var status = await api.GetJsonAsync("/api/status");
        Assert.That(status["recovery"]!.Str("detail"), Does.Contain("disk trouble"));
        Assert.That(DateTimeOffset.Parse(status["recovery"]!.Str("nextAttemptAt"), CultureInfo.InvariantCulture),
            Is.EqualTo(agent.Time.GetUtcNow() + LineAgent.Scheduling.StartupRecovery.RetryEvery));
        Assert.That(status["lastError"]!.Str("code"), Is.EqualTo("recovery_pending"));
        Assert.That(status["lastError"]!.Str("message"), Does.Contain("Nothing is sent").And.Contain("disk trouble"));
        Assert.That(status["storage"]!.Str("state"), Is.EqualTo("ok"));

        await using (var c = await new Db(dir.File("lineagent.db")).OpenAsync())
            await c.ExecuteAsync("DROP TRIGGER refuse_updates");
        agent.Time.Advance(LineAgent.Scheduling.StartupRecovery.RetryEvery);
        foreach (var id in new[] { leftover.Id, due.Id })
            await Eventually.ValueAsync(() => api.GetJsonAsync($"/api/messages/{id}")!, m => m.Str("status") == "sent", "sent once recovery succeeded");
        Assert.That((agent.OutboxFileCount(leftover.Id), agent.OutboxFileCount(due.Id)), Is.EqualTo((1, 1)));
        status = await api.GetJsonAsync("/api/status");
        Assert.That(status["recovery"], Is.Null);
        Assert.That(status["lastError"]?["code"]?.GetValue<string>(), Is.Not.EqualTo("recovery_pending"));
    }
}
