using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Storage;

/// <summary>
/// Each transition of <see cref="MessageLifecycle"/> is a compare-and-set: from a state it does not apply to it
/// changes nothing (answers null) and writes no event. One test per transition that must be refused.
/// </summary>
public sealed class LifecycleTransitionTests : LifecycleTestBase
{
    private async Task<MessageRow> NewAsync(string status = MessageStatus.Queued, string? retryOf = null, string? batchId = null)
    {
        var now = Time.ToMs(_time.GetUtcNow());
        var row = new MessageRow
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Content = "hi", Type = MessageType.IMessage, RequestedType = MessageType.Auto, Status = status,
            LineId = "default", RecipientPhone = "+12025550123", DueAt = now, CreatedAt = now, UpdatedAt = now,
            ScheduledAt = status == MessageStatus.Scheduled ? now + 60_000 : null, RetryOf = retryOf, BatchId = batchId,
        };
        if (status == MessageStatus.Scheduled) row.DueAt = now + 60_000;
        return (await _lifecycle.AcceptAsync([row]))[0];
    }

    /// <summary>Handed to Messages, which marks when its script starts (<see cref="Channels.ChannelCapabilities.MarksStart"/>).</summary>
    private async Task<MessageRow> HandedAsync(string? batchId = null) =>
        (await _lifecycle.ClaimAndHandOffAsync((await NewAsync(batchId: batchId)).Id, "c1", "messages", false, false, marksStart: true))!;

    /// <summary>Handed to Messages, and its script started (its chat.db position on disk).</summary>
    private async Task<MessageRow> StartedAsync(string? batchId = null)
    {
        var m = await HandedAsync(batchId);
        Assert.That(await _lifecycle.KeepScriptBaselineAsync(m.Id, "c1", 7), Is.True);
        return m;
    }

    private async Task<int> EventsAsync(string id) => (await _lifecycle.Store.EventsAsync(id)).Count;

    private async Task AssertRefusedAsync(string id, Func<Task<object?>> transition, string expectedStatus)
    {
        var events = await EventsAsync(id);
        Assert.That(await transition(), Is.Null, "the transition must not apply");
        Assert.That((await _lifecycle.Store.GetAsync(id))!.Status, Is.EqualTo(expectedStatus));
        Assert.That(await EventsAsync(id), Is.EqualTo(events), "a refused transition writes no event");
    }

    [Test]
    public async Task Cancel_ShouldBeRefused_OnceTheSendStarted()
    {
        var m = await StartedAsync();
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.CancelAsync(m.Id, "too late"), MessageStatus.Sending);
    }

    /// <summary>A batch's cancel takes its queued message and its send still waiting for Messages, not its send whose script started.</summary>
    [Test]
    public async Task CancelBatch_ShouldTakeAWaitingSend_AndLeaveAStartedOne()
    {
        var started = await StartedAsync("batch_1");
        var waiting = await HandedAsync("batch_1");
        var queued = await NewAsync(batchId: "batch_1");
        var cancelled = await _lifecycle.CancelBatchAsync("batch_1", "cancelled through the API");
        Assert.That(cancelled.Select(m => m.Id), Is.EquivalentTo(new[] { waiting.Id, queued.Id }));
        Assert.That((await _lifecycle.Store.GetAsync(started.Id))!.Status, Is.EqualTo(MessageStatus.Sending));
        Assert.That(await _lifecycle.KeepScriptBaselineAsync(waiting.Id, "c1", 7), Is.False, "the waiting send's script must not start");
    }

    /// <summary>A channel that does not mark its start (SMTP, Twilio, the outbox) starts at the hand-off: refused from then on.</summary>
    [Test]
    public async Task Cancel_ShouldBeRefused_AfterTheHandOffToAChannelThatStartsAtOnce()
    {
        var m = (await _lifecycle.ClaimAndHandOffAsync((await NewAsync()).Id, "c1", "email", false, false))!;
        Assert.That(m.ScriptBaseline, Is.EqualTo(MessageRow.BaselineUnread), "marked started by the hand-off");
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.CancelAsync(m.Id, "too late"), MessageStatus.Sending);
    }

    /// <summary>
    /// A Messages send handed off but waiting for Messages.app (another line's script holds it): nothing reached Messages, and a
    /// cancel takes it (probe: 409 `not_cancellable` for a send that had not started). Its start mark is then refused, so its
    /// script never runs, and the attempt's outcome cannot overwrite the cancel.
    /// </summary>
    [Test]
    public async Task Cancel_ShouldTakeAHandedOffSendThatHasNotStarted_AndItsStartThenBeRefused()
    {
        var m = await HandedAsync();
        var cancelled = await _lifecycle.CancelAsync(m.Id, "cancelled through the API");
        Assert.That((cancelled?.Status, cancelled?.HandedAt, cancelled?.Claim), Is.EqualTo((MessageStatus.Cancelled, (long?)null, (string?)null)),
            "cancelled, and not counted as handed over");
        Assert.That(await _lifecycle.KeepScriptBaselineAsync(m.Id, "c1", 7), Is.False, "the script must not start");
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.RequeueAsync(m.Id, "c1", m.DueAt, null, "deferred", "x"), MessageStatus.Cancelled);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.SentAsync(m.Id, "c1", _time.GetUtcNow(), null, "x"), MessageStatus.Cancelled);
    }

    [Test]
    public async Task Confirm_ShouldBeRefused_ForACancelledRow()
    {
        var m = await NewAsync();
        Assert.That(await _lifecycle.CancelAsync(m.Id, "test"), Is.Not.Null);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.ConfirmAsync(m.Id, _time.GetUtcNow(), null, "late row"), MessageStatus.Cancelled);
    }

    [Test]
    public async Task Claim_ShouldBeRefused_ForAScheduledRowNotYetDue_AndForASentRow()
    {
        var scheduled = await NewAsync(MessageStatus.Scheduled);
        await AssertRefusedAsync(scheduled.Id, async () => await _lifecycle.ClaimAsync(scheduled.Id, "c", "early"), MessageStatus.Scheduled);

        var m = await HandedAsync();
        Assert.That(await _lifecycle.SentAsync(m.Id, "c1", _time.GetUtcNow(), null, "sent"), Is.Not.Null);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.ClaimAndHandOffAsync(m.Id, "c2", "messages", false, false), MessageStatus.Sent);
    }

    [Test]
    public async Task Outcomes_ShouldBeRefused_WithoutTheClaim()
    {
        var m = await HandedAsync();
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.SentAsync(m.Id, "someone-else", _time.GetUtcNow(), null, "x"), MessageStatus.Sending);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.FailAsync(m.Id, "someone-else", FailureCodes.ChannelError, "x", null), MessageStatus.Sending);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.RequeueAsync(m.Id, "someone-else", m.DueAt, null, "released", "x"), MessageStatus.Sending);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.ChannelAcceptedAsync(m.Id, "someone-else", null, 1, "x"), MessageStatus.Sending);
    }

    /// <summary>
    /// The chat.db baseline stored before a Messages script (on disk before it runs) belongs to this attempt only: refused
    /// without the claim, and cleared by the next hand-off, so a send cut off by a crash is never placed by an earlier
    /// attempt's position (review of 0bff746: a requeued attempt's value outlived it).
    /// </summary>
    [Test]
    public async Task ScriptBaseline_ShouldBeRefusedWithoutTheClaim_AndNotOutliveItsAttempt()
    {
        var m = await HandedAsync();
        var events = await EventsAsync(m.Id);
        Assert.That(await _lifecycle.KeepScriptBaselineAsync(m.Id, "someone-else", 41), Is.False);
        Assert.That((await _lifecycle.Store.GetAsync(m.Id))!.ScriptBaseline, Is.Null);
        Assert.That(await _lifecycle.KeepScriptBaselineAsync(m.Id, "c1", 42), Is.True);
        Assert.That((await _lifecycle.Store.GetAsync(m.Id))!.ScriptBaseline, Is.EqualTo(42));
        Assert.That(await EventsAsync(m.Id), Is.EqualTo(events), "bookkeeping, not a transition: no event");

        Assert.That(await _lifecycle.RequeueAsync(m.Id, "c1", m.DueAt, null, "deferred", "settings fault"), Is.Not.Null);
        Assert.That(await _lifecycle.KeepScriptBaselineAsync(m.Id, "c1", 43), Is.False, "not while queued");
        var again = await _lifecycle.ClaimAndHandOffAsync(m.Id, "c2", "messages", false, false, marksStart: true);
        Assert.That(again!.ScriptBaseline, Is.Null, "the next attempt starts without one");
    }

    [Test]
    public async Task Reschedule_ShouldBeRefused_OnceQueued()
    {
        var m = await NewAsync(MessageStatus.Queued);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.RescheduleAsync(m.Id, "new text", null, null, "edit"), MessageStatus.Queued);
    }

    [Test]
    public async Task Hold_ShouldBeRefused_AfterTheHandOff()
    {
        var m = await HandedAsync();
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.HoldAsync(m.Id, _time.GetUtcNow().AddMinutes(5), "paced"), MessageStatus.Sending);
    }

    /// <summary>
    /// The dispatcher decides a hold on the row it peeked while it was due; a reschedule that moved it later in between
    /// must keep it scheduled (a held row is `queued` and can no longer be edited). Found by a race probe: 3-15 of 400.
    /// </summary>
    [Test]
    public async Task Hold_ShouldBeRefused_ForARowNotDue()
    {
        var m = await NewAsync(MessageStatus.Scheduled);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.HoldAsync(m.Id, _time.GetUtcNow().AddHours(1), "recipient's hours"), MessageStatus.Scheduled);
    }

    [Test]
    public async Task FallbackAndDeliveryFailure_ShouldBeRefused_UnlessSending()
    {
        var m = await NewAsync();
        var sms = new MessageRow
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Content = "hi", Type = MessageType.Sms, RequestedType = MessageType.Auto, Status = MessageStatus.Queued,
            LineId = "default", RecipientPhone = "+12025550123", DueAt = m.DueAt, CreatedAt = m.DueAt, UpdatedAt = m.DueAt, FallbackFrom = m.Id,
        };
        var events = await EventsAsync(m.Id);
        Assert.That(await _lifecycle.FallbackAsync(m.Id, FailureCodes.IMessageUnavailable, "22", 22, sms, "fallback"), Is.Null);
        Assert.That(await _lifecycle.Store.GetAsync(sms.Id), Is.Null, "no fallback row without the failure it belongs to");
        Assert.That(await EventsAsync(m.Id), Is.EqualTo(events));
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.FailDeliveryAsync(m.Id, FailureCodes.MessagesError, "x", 1), MessageStatus.Queued);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.FailUnconfirmedAsync(m.Id, "x", _time.GetUtcNow()), MessageStatus.Queued);
    }

    /// <summary>An unconfirmed send that chat.db later shows failed with 22 falls back to SMS, unless it was retried meanwhile.</summary>
    [Test]
    public async Task LateFallback_ShouldBeRefused_WhenTheUnconfirmedSendWasRetried()
    {
        MessageRow Sms(MessageRow of) => new()
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Content = "hi", Type = MessageType.Sms, RequestedType = MessageType.Auto, Status = MessageStatus.Queued,
            LineId = "default", RecipientPhone = "+12025550123", DueAt = of.DueAt, CreatedAt = of.DueAt, UpdatedAt = of.DueAt, FallbackFrom = of.Id,
        };
        var retried = await HandedAsync();
        Assert.That(await _lifecycle.FailUnconfirmedAsync(retried.Id, "no row", _time.GetUtcNow().AddDays(1)), Is.Not.Null);
        await NewAsync(retryOf: retried.Id);
        var sms = Sms(retried);
        await AssertRefusedAsync(retried.Id, async () => await _lifecycle.FallbackAsync(retried.Id, FailureCodes.IMessageUnavailable, "22", 22, sms, "fallback",
            settlingUnconfirmed: true), MessageStatus.Failed);
        Assert.That(await _lifecycle.Store.GetAsync(sms.Id), Is.Null, "no SMS: the retry sends it");

        var alone = await HandedAsync();
        Assert.That(await _lifecycle.FailUnconfirmedAsync(alone.Id, "no row", _time.GetUtcNow().AddDays(1)), Is.Not.Null);
        var fallback = await _lifecycle.FallbackAsync(alone.Id, FailureCodes.IMessageUnavailable, "22", 22, Sms(alone), "fallback", settlingUnconfirmed: true);
        Assert.That(fallback, Is.Not.Null, "not retried: it falls back");
        Assert.That(fallback!.Value.Failed.ErrorCode, Is.EqualTo(FailureCodes.IMessageUnavailable));
        Assert.That(fallback.Value.Failed.FallbackTo, Is.EqualTo(fallback.Value.Fallback.Id));
        await AssertRefusedAsync(alone.Id, async () => await _lifecycle.FallbackAsync(alone.Id, FailureCodes.IMessageUnavailable, "22", 22, Sms(alone), "again",
            settlingUnconfirmed: true), MessageStatus.Failed);
    }

    /// <summary>
    /// `message.fallback` is announced for the fallback's insert alone. A fallback row held by the pacer in the same
    /// millisecond it was created is still queued with created_at = updated_at; read from the row, that hold was a second
    /// `message.fallback` to every receiver (found by a review).
    /// </summary>
    [Test]
    public async Task FallbackEvent_ShouldBeAnnouncedOnce_WhenTheFallbackIsHeldInTheSameMillisecond()
    {
        var announced = new List<(string Id, string Type)>();
        _lifecycle.Store.ChangedInTransaction += (_, row, status, transition) =>
        {
            if (LineAgent.Webhooks.WebhookOutbox.EventType(row, status, transition) is { } type)
                announced.Add((row.Id, type));
        };
        var m = await HandedAsync();
        var sms = new MessageRow
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Content = "hi", Type = MessageType.Sms, RequestedType = MessageType.Auto, Status = MessageStatus.Queued,
            LineId = "default", RecipientPhone = "+12025550123", DueAt = m.DueAt, CreatedAt = m.DueAt, UpdatedAt = m.DueAt, FallbackFrom = m.Id,
        };
        Assert.That(await _lifecycle.FallbackAsync(m.Id, FailureCodes.IMessageUnavailable, "22", 22, sms, "fallback"), Is.Not.Null);
        var held = await _lifecycle.HoldAsync(sms.Id, _time.GetUtcNow().AddSeconds(30), "paced");
        Assert.That(held, Is.Not.Null, "the pacer holds the fallback in the same millisecond");
        Assert.That(held!.CreatedAt, Is.EqualTo(held.UpdatedAt));
        Assert.That(announced, Is.EqualTo(new[] { (m.Id, "message.failed"), (sms.Id, "message.fallback") }));
    }

    [Test]
    public async Task Match_ShouldBeRefused_OnceTheRowHasItsChannelRecord()
    {
        var m = await HandedAsync();
        Assert.That(await _lifecycle.MatchAsync(m.Id, "GUID-1", "row 1"), Is.Not.Null);
        Assert.That(await _lifecycle.MatchAsync(m.Id, "GUID-2", "row 2"), Is.Null);
        Assert.That((await _lifecycle.Store.GetAsync(m.Id))!.ChannelRef, Is.EqualTo("GUID-1"));
    }

    [Test]
    public async Task Delivered_ShouldBeRecordedOnce_AndReadNotUndone()
    {
        var m = await HandedAsync();
        await _lifecycle.SentAsync(m.Id, "c1", _time.GetUtcNow(), null, "sent");
        Assert.That(await _lifecycle.ReadAsync(m.Id, _time.GetUtcNow(), "read"), Is.Not.Null);
        Assert.That(await _lifecycle.DeliveredAsync(m.Id, _time.GetUtcNow(), "delivered late"), Is.Null, "read already implies delivered");
        Assert.That(await _lifecycle.ReadAsync(m.Id, _time.GetUtcNow(), "again"), Is.Null);
        Assert.That((await _lifecycle.Store.GetAsync(m.Id))!.Delivery, Is.EqualTo(LineAgent.Messages.Delivery.Read));
    }

    [Test]
    public async Task ConfirmLate_ShouldBeRefused_UnlessFailedUnconfirmed()
    {
        var m = await HandedAsync();
        await _lifecycle.FailAsync(m.Id, "c1", FailureCodes.ChannelError, "broken", null);
        await AssertRefusedAsync(m.Id, async () => await _lifecycle.ConfirmLateAsync(m.Id, _time.GetUtcNow(), _time.GetUtcNow().AddDays(1), "late"), MessageStatus.Failed);
    }

    /// <summary>Group commit: many units arriving together are written in fewer transactions, each answered after its commit.</summary>
    [Test]
    public async Task ConcurrentAccepts_ShouldBeGroupedIntoFewerCommits_AndAllBeOnDisk()
    {
        var (commits0, units0) = _writer.Counters;
        await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(() => NewAsync())));
        var (commits, units) = _writer.Counters;
        Assert.That(units - units0, Is.EqualTo(200));
        Assert.That(commits - commits0, Is.LessThan(200), "some units shared a commit");
        await using var c = await _db.OpenAsync();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM messages";
        Assert.That((long)cmd.ExecuteScalar()!, Is.EqualTo(200));
    }

    /// <summary>
    /// A large unit (a bulk) runs in a transaction of its own, without a savepoint; the small ones around it still share
    /// commits. The writer is held on a first unit so that the rest queue up behind it and are grouped.
    /// </summary>
    [Test]
    public async Task AnAloneUnit_ShouldHaveItsOwnTransaction_WhileTheOthersAroundItShareTheirs()
    {
        using var gate = new ManualResetEventSlim();
        var blocker = _writer.WriteAsync(_ => gate.Wait(TimeSpan.FromSeconds(30)));
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<int, object>();
        Task<int> Unit(int i, bool alone) => _writer.WriteAsync(s =>
        {
            seen[i] = s.Transaction;
            using var cmd = s.Connection.CreateCommand();
            cmd.Transaction = s.Transaction;
            cmd.CommandText = "INSERT INTO bridge_state (key, value) VALUES ($k, 'x')";
            cmd.Parameters.AddWithValue("$k", $"unit-{i}");
            cmd.ExecuteNonQuery();
            return i;
        }, alone);
        var before = Enumerable.Range(0, 50).Select(i => Unit(i, alone: false)).ToList();
        var big = Unit(50, alone: true);
        var after = Enumerable.Range(51, 50).Select(i => Unit(i, alone: false)).ToList();
        gate.Set();
        await blocker;
        await Task.WhenAll([.. before, big, .. after]);

        var mine = seen[50];
        Assert.That(seen.Where(x => x.Key != 50 && ReferenceEquals(x.Value, mine)).Select(x => x.Key), Is.Empty, "nothing shared its transaction");
        Assert.That(before.Select(t => seen[t.Result]).Distinct().Count(), Is.LessThan(50), "the units before it were grouped");
        Assert.That(after.Select(t => seen[t.Result]).Distinct().Count(), Is.LessThan(50), "and so were the ones after it");
        await using var c = await _db.OpenAsync();
        using var count = c.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM bridge_state WHERE key LIKE 'unit-%'";
        Assert.That((long)count.ExecuteScalar()!, Is.EqualTo(101));
    }

    [Test]
    public async Task AnAloneUnitThatThrows_ShouldLeaveNothing_AndTheWriterGoesOn()
    {
        var failing = _writer.WriteAsync<int>(s =>
        {
            using var cmd = s.Connection.CreateCommand();
            cmd.Transaction = s.Transaction;
            cmd.CommandText = "INSERT INTO bridge_state (key, value) VALUES ('half-done', 'x')";
            cmd.ExecuteNonQuery();
            throw new InvalidOperationException("refused halfway");
        }, alone: true);
        Assert.That(async () => await failing, Throws.InvalidOperationException.With.Message.EqualTo("refused halfway"));
        var m = await NewAsync();
        await using var c = await _db.OpenAsync();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM bridge_state WHERE key = 'half-done'";
        Assert.That((long)cmd.ExecuteScalar()!, Is.Zero, "rolled back");
        Assert.That(await _lifecycle.Store.GetAsync(m.Id), Is.Not.Null, "the next unit was written");
    }
}
