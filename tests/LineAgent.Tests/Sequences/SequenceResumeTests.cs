using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Sequences;

/// <summary>
/// A step that failed `unconfirmed` stops its sequence; when the channel's own record then shows it was sent after all
/// (ConfirmLate), the follow-ups it stopped wait again and the next one is due its `after` past the real sentAt. Before,
/// they stayed cancelled: the lead got the first message and never the follow-ups.
/// </summary>
public sealed class SequenceResumeTests : LifecycleTestBase
{
    private static readonly TimeSpan After1 = TimeSpan.FromHours(2), After2 = TimeSpan.FromDays(1);

    private async Task<MessageRow[]> SequenceAsync(string phone = "+12025550123", string? batchId = null)
    {
        var now = Time.ToMs(_time.GetUtcNow());
        var seq = Ids.New("seq", _time.GetUtcNow());
        MessageRow Step(int n, TimeSpan? after) => new()
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Content = $"step {n}", Type = MessageType.IMessage, RequestedType = MessageType.Auto,
            Status = n == 0 ? MessageStatus.Queued : MessageStatus.Scheduled, LineId = "default", RecipientPhone = phone,
            DueAt = n == 0 ? now : SequenceRows.WaitingDueAt, CreatedAt = now, UpdatedAt = now, SequenceId = seq, SequenceStep = n,
            FollowUpAfter = after is { } a ? (long)a.TotalMilliseconds : null, StopOnReply = n > 0, BatchId = batchId,
        };
        return (await _lifecycle.AcceptAsync([Step(0, null), Step(1, After1), Step(2, After2)])).ToArray();
    }

    /// <summary>Step 0 handed over, then failed `unconfirmed` (what the confirmation deadline does): the rest is stopped.</summary>
    private async Task FailUnconfirmedAsync(MessageRow step0)
    {
        Assert.That(await _lifecycle.ClaimAndHandOffAsync(step0.Id, "c1", "messages", false, false), Is.Not.Null);
        Assert.That(await _lifecycle.FailAsync(step0.Id, "c1", FailureCodes.Unconfirmed, "no matching row appeared", null), Is.Not.Null);
    }

    private async Task<MessageRow> GetAsync(string id) => (await _lifecycle.Store.GetAsync(id))!;

    [Test]
    public async Task AStepConfirmedAfterItFailedUnconfirmed_ShouldResumeTheFollowUpsItStopped()
    {
        var steps = await SequenceAsync();
        await FailUnconfirmedAsync(steps[0]);
        Assert.That((await GetAsync(steps[1].Id)).ErrorCode, Is.EqualTo("sequence_stopped"));
        Assert.That((await GetAsync(steps[2].Id)).Status, Is.EqualTo(MessageStatus.Cancelled));

        _time.Advance(TimeSpan.FromMinutes(30));
        var sentAt = _time.GetUtcNow().AddMinutes(-25); // chat.db's date of the send
        Assert.That(await _lifecycle.ConfirmLateAsync(steps[0].Id, sentAt, _time.GetUtcNow().AddDays(7), "chat.db shows it sent"), Is.Not.Null);

        var next = await GetAsync(steps[1].Id);
        Assert.That(next.Status, Is.EqualTo(MessageStatus.Scheduled));
        Assert.That(next.DueAt, Is.EqualTo(Time.ToMs(sentAt + After1)), "its `after` past the real sentAt");
        Assert.That((next.ErrorCode, next.ErrorMessage), Is.EqualTo(((string?)null, (string?)null)));
        var last = await GetAsync(steps[2].Id);
        Assert.That((last.Status, last.IsWaiting), Is.EqualTo((MessageStatus.Scheduled, true)), "waits for step 1");
        var events = await _lifecycle.Store.EventsAsync(steps[1].Id);
        Assert.That(events.Select(e => e.Code), Does.Contain("sequence_stopped").And.Contain("sequence_resumed"));
    }

    [Test]
    public async Task AResumedFollowUpAlreadyPastItsTime_ShouldBeQueued()
    {
        var steps = await SequenceAsync();
        await FailUnconfirmedAsync(steps[0]);
        var sentAt = _time.GetUtcNow();
        _time.Advance(TimeSpan.FromHours(3)); // the confirmation comes after step 1's time
        await _lifecycle.ConfirmLateAsync(steps[0].Id, sentAt, _time.GetUtcNow().AddDays(7), "late");

        Assert.That((await GetAsync(steps[1].Id)).Status, Is.EqualTo(MessageStatus.Queued));
    }

    [Test]
    public async Task AStopOnReplyFollowUp_WhoseRecipientWroteMeanwhile_ShouldStayCancelled()
    {
        var steps = await SequenceAsync();
        await FailUnconfirmedAsync(steps[0]);
        _time.Advance(TimeSpan.FromMinutes(5));
        var at = Time.ToMs(_time.GetUtcNow());
        await _lifecycle.ReceiveAsync(new MessageRow
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Direction = "inbound", Content = "who is this?", Type = MessageType.IMessage,
            RequestedType = MessageType.IMessage, Status = MessageStatus.Received, LineId = "default", RecipientPhone = "+12025550123",
            DueAt = at, SentAt = at, CreatedAt = at, UpdatedAt = at, ReplyTo = steps[0].Id,
        }, "reply");
        await _lifecycle.ConfirmLateAsync(steps[0].Id, _time.GetUtcNow().AddMinutes(-4), _time.GetUtcNow().AddDays(7), "late");

        foreach (var s in steps[1..])
            Assert.That((await GetAsync(s.Id)).Status, Is.EqualTo(MessageStatus.Cancelled), "the lead answered: stopOnReply keeps it stopped");
    }

    /// <summary>Review: the user cancelled the (already stopped) sequence; a late confirmation must not bring it back.</summary>
    [Test]
    public async Task ASequenceTheUserCancelledWhileStopped_ShouldStayCancelled()
    {
        var steps = await SequenceAsync();
        await FailUnconfirmedAsync(steps[0]);
        Assert.That(await _lifecycle.CancelSequenceAsync(steps[0].SequenceId!, "cancelled through the API"), Is.Empty, "nothing pending to cancel");
        await _lifecycle.ConfirmLateAsync(steps[0].Id, _time.GetUtcNow(), _time.GetUtcNow().AddDays(7), "late");

        foreach (var s in steps[1..])
        {
            var row = await GetAsync(s.Id);
            Assert.That((row.Status, row.ErrorCode), Is.EqualTo((MessageStatus.Cancelled, (string?)null)));
            Assert.That((await _lifecycle.Store.EventsAsync(s.Id)).Select(e => e.Code), Does.Contain("cancelled_while_stopped"));
        }
    }

    /// <summary>Review: the same for a cancel of the batch the sequence belongs to.</summary>
    [Test]
    public async Task ABatchTheUserCancelledWhileStopped_ShouldStayCancelled()
    {
        var steps = await SequenceAsync(batchId: "batch_review");
        await FailUnconfirmedAsync(steps[0]);
        await _lifecycle.CancelBatchAsync("batch_review", "cancelled through the API");
        await _lifecycle.ConfirmLateAsync(steps[0].Id, _time.GetUtcNow(), _time.GetUtcNow().AddDays(7), "late");

        foreach (var s in steps[1..])
            Assert.That((await GetAsync(s.Id)).Status, Is.EqualTo(MessageStatus.Cancelled));
    }

    /// <summary>
    /// Review: the user cancelled step 1 while step 0 was still queued, which stopped step 2. Step 0 then sent must not
    /// bring step 2 back (it would wait forever behind the cancelled step 1): only the steps a step stopped resume.
    /// </summary>
    [Test]
    public async Task AStepAnotherStepStopped_ShouldNotResume_WhenAnEarlierStepIsSent()
    {
        var steps = await SequenceAsync();
        Assert.That(await _lifecycle.CancelAsync(steps[1].Id, "the user cancelled step 1"), Is.Not.Null);
        Assert.That((await GetAsync(steps[2].Id)).ErrorCode, Is.EqualTo("sequence_stopped"));
        Assert.That(await _lifecycle.ClaimAndHandOffAsync(steps[0].Id, "c1", "messages", false, false), Is.Not.Null);
        Assert.That(await _lifecycle.SentAsync(steps[0].Id, "c1", _time.GetUtcNow(), null, "sent"), Is.Not.Null);

        Assert.That((await GetAsync(steps[1].Id)).Status, Is.EqualTo(MessageStatus.Cancelled));
        Assert.That((await GetAsync(steps[2].Id)).Status, Is.EqualTo(MessageStatus.Cancelled));
    }

    [Test]
    public async Task AnotherSequencesStoppedSteps_ShouldNotBeResumed()
    {
        var mine = await SequenceAsync("+12025550123");
        var other = await SequenceAsync("+12025550124");
        await FailUnconfirmedAsync(other[0]);
        Assert.That(await _lifecycle.ClaimAndHandOffAsync(mine[0].Id, "c2", "messages", false, false), Is.Not.Null);
        Assert.That(await _lifecycle.SentAsync(mine[0].Id, "c2", _time.GetUtcNow(), null, "sent"), Is.Not.Null);

        Assert.That((await GetAsync(other[1].Id)).Status, Is.EqualTo(MessageStatus.Cancelled));
        Assert.That((await GetAsync(mine[1].Id)).Status, Is.EqualTo(MessageStatus.Scheduled));
    }
}
