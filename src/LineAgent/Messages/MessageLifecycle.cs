using System.Diagnostics;
using System.Threading.Channels;
using Dapper;
using LineAgent.Delivery;
using LineAgent.Storage;
using DeliveryState = LineAgent.Messages.Delivery;

namespace LineAgent.Messages;

/// <summary>The names of a message's transitions, as change notifications carry them.</summary>
public static class Transitions
{
    public const string Accept = "accept";
    public const string Receive = "receive";
    public const string Claim = "claim";
    public const string HandOff = "hand-off";
    public const string ChannelAccepted = "channel-accepted";
    public const string Sent = "sent";
    public const string Fail = "fail";
    public const string Requeue = "requeue";
    public const string Hold = "hold";
    public const string Note = "note";
    public const string Cancel = "cancel";
    public const string Reschedule = "reschedule";
    public const string Match = "match";
    public const string Confirm = "confirm";
    public const string Delivered = "delivered";
    public const string Read = "read";
    public const string NotDelivered = "not-delivered";
    public const string Fallback = "fallback";
    public const string Track = "track";
    /// <summary>A follow-up gets its due time: its previous step was sent.</summary>
    public const string FollowUp = "follow-up";
    /// <summary>A step failed or was cancelled: the rest of its sequence is cancelled.</summary>
    public const string SequenceStop = "sequence-stop";
    /// <summary>The recipient replied: their pending stop-on-reply messages are cancelled.</summary>
    public const string ReplyCancel = "reply-cancel";
    /// <summary>A step that had stopped its sequence was sent after all: the steps it stopped wait again.</summary>
    public const string SequenceResume = "sequence-resume";
}

/// <summary>
/// The one place that changes a message. Each transition is a compare-and-set on the row's current state,
/// written with its event row (and, through the store's hook, its webhook outbox rows) in one transaction of
/// the single writer, which commits whatever arrives together (group commit). A transition that does not
/// apply (the row is no longer in the state it requires) changes nothing and answers null.
/// </summary>
public sealed class MessageLifecycle
{
    private readonly DbWriter writer;
    private readonly MessageStore store;
    private readonly TimeProvider time;

    /// <summary>Sequence steps that changed in the current unit of work (the writer's thread only).</summary>
    private readonly List<(MessageRow Row, string Status)> _sequenceChanges = [];

    public MessageLifecycle(DbWriter writer, MessageStore store, TimeProvider time)
    {
        this.writer = writer;
        this.store = store;
        this.time = time;
        store.ChangedInTransaction += (_, row, status, _) =>
        {
            if (row.SequenceId is not null && status is MessageStatus.Sent or MessageStatus.Failed or MessageStatus.Cancelled)
                _sequenceChanges.Add((row, status));
        };
    }

    public MessageStore Store => store;

    private long NowMs => Time.ToMs(time.GetUtcNow());

    /// <summary>
    /// Every unit of work ends with what its changes mean for their sequences, in the same transaction: a step
    /// sent gives the next one its due time; a step failed or cancelled stops the rest.
    /// </summary>
    /// <summary>A unit of this many rows or more gets a transaction of its own (see <see cref="DbWriter"/>).</summary>
    public const int AloneFrom = 200;

    /// <summary>One unit through the writer; a <paramref name="deferrable"/> one (see <see cref="DbWriter.WriteDeferrableAsync{T}"/>) is not
    /// cancellable: <paramref name="ct"/> is not used for it.</summary>
    private Task<T> Write<T>(Func<WriteScope, T> work, CancellationToken ct, bool alone = false, bool deferrable = false)
    {
        T Unit(WriteScope s)
        {
            _sequenceChanges.Clear();
            try
            {
                var result = work(s);
                FollowSequences(s);
                return result;
            }
            finally
            {
                _sequenceChanges.Clear();
            }
        }
        return deferrable ? writer.WriteDeferrableAsync(Unit) : writer.WriteAsync(Unit, alone, ct);
    }

    private void FollowSequences(WriteScope s)
    {
        for (var i = 0; i < _sequenceChanges.Count; i++)
        {
            var (row, status) = _sequenceChanges[i];
            if (status == MessageStatus.Sent && row.SentAt is { } sentAt)
            {
                ResumeSequence(s, row);
                ScheduleFollowUp(s, row, sentAt);
            }
            else if (status != MessageStatus.Sent && row.FallbackTo is null)
                StopSequence(s, row);
        }
    }

    /// <summary>Transition follow-up: the waiting next step is due its `after` past this step's actual sentAt.</summary>
    private void ScheduleFollowUp(WriteScope s, MessageRow sent, long sentAt)
    {
        var now = NowMs;
        var next = store.Transition(s, Transitions.FollowUp, MessageSql.ScheduleFollowUp,
            new { sent.SequenceId, Step = sent.SequenceStep ?? 0, SentAt = sentAt, Now = now, Waiting = SequenceRows.WaitingDueAt }, recordEvent: false);
        if (next is not null)
            store.Note(s, next.Id, now, next.Status, "follow_up",
                $"due {Time.Iso(next.DueAt)}: {Durations.Format(TimeSpan.FromMilliseconds(next.FollowUpAfter ?? 0))} after step {sent.SequenceStep} ({sent.Id}) was sent at {Time.Iso(sentAt)}");
    }

    /// <summary>
    /// Transition sequence-resume: a step sent after it had stopped its sequence (failed `unconfirmed`, then confirmed late by
    /// chat.db, or replaced by its SMS fallback after a late error 22) lets the steps it stopped wait for it again (review:
    /// the sequence stayed stopped, `stoppedBy` `sequence_stopped`, though no step had failed). A reply since is still
    /// honoured: the dispatcher cancels a stop-on-reply step whose recipient replied (<see cref="MessageSql.ReplySince"/>).
    /// </summary>
    private void ResumeSequence(WriteScope s, MessageRow sent)
    {
        var resumed = store.TransitionMany(s, Transitions.SequenceResume, MessageSql.ResumeSequence,
            new { sent.SequenceId, Step = sent.SequenceStep ?? 0, Now = NowMs, Waiting = SequenceRows.WaitingDueAt },
            code: "resumed", detail: $"step {sent.SequenceStep} ({sent.Id}) was sent after all: this step waits for its previous one again");
        // The late error 22 found the later steps stopped, so they were not routed to SMS with the fallback.
        if (resumed.Count > 0 && sent.FallbackFrom is not null && sent.Type == MessageType.Sms)
            store.TransitionMany(s, Transitions.Note, MessageSql.RouteLaterStepsAsSms, new { sent.SequenceId, Step = sent.SequenceStep ?? 0, Now = NowMs },
                code: "rerouted", detail: $"type auto: SMS, as step {sent.SequenceStep} went as SMS ({sent.Id}) after error 22");
    }

    /// <summary>Transition sequence-stop: a failed or cancelled step cancels the steps after it.</summary>
    private void StopSequence(WriteScope s, MessageRow stopped)
    {
        var why = stopped.Status == MessageStatus.Failed ? $"failed ({stopped.ErrorCode})" : $"was cancelled{(stopped.ErrorCode is { } c ? $" ({c})" : "")}";
        store.TransitionMany(s, Transitions.SequenceStop, MessageSql.StopSequence, new
        {
            stopped.SequenceId, Step = stopped.SequenceStep ?? 0, Now = NowMs,
            Message = $"Step {stopped.SequenceStep} of sequence {stopped.SequenceId} ({stopped.Id}) {why}; the rest of the sequence is stopped.",
        });
    }

    // ---- new messages -------------------------------------------------------------------------------

    /// <summary>New outbound messages (scheduled or queued, or failed for a reason known at once), with extra work in the same transaction.</summary>
    public Task<IReadOnlyList<MessageRow>> AcceptAsync(IReadOnlyList<MessageRow> rows, Action<WriteScope>? alsoInTransaction = null, CancellationToken ct = default) =>
        Write<IReadOnlyList<MessageRow>>(s =>
        {
            store.InsertMany(s, rows, Transitions.Accept);
            alsoInTransaction?.Invoke(s);
            return rows;
        }, ct, alone: rows.Count >= AloneFrom);

    /// <summary>
    /// As <see cref="AcceptAsync(IReadOnlyList{MessageRow}, Action{WriteScope}?, CancellationToken)"/> for rows that arrive in
    /// parts while they are still being made (a large bulk): one transaction of its own takes each part as it comes, then
    /// <paramref name="alsoInTransaction"/>, and commits once <paramref name="parts"/> is completed; completed with an error,
    /// it is rolled back and nothing is stored. The writer waits for the parts meanwhile, and every other write waits behind
    /// it: whoever writes them must not wait for the writer before completing them, and once the unit has run for
    /// <paramref name="planWait"/> the writer waits no more for a part that has not come (<see cref="PartsTooSlowException"/>:
    /// rolled back, nothing stored), so a slow plan holds the agent's other writes for about that long at most.
    /// </summary>
    public Task<int> AcceptAsync(ChannelReader<IReadOnlyList<MessageRow>> parts, TimeSpan planWait, Action<WriteScope>? alsoInTransaction = null,
        CancellationToken ct = default) =>
        Write(s =>
        {
            var count = 0;
            var deadline = Stopwatch.GetTimestamp() + (long)(planWait.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                // On the writer's own thread: blocking here holds no thread-pool thread. The wait is what is left of the
                // unit's time, not a fresh one per part: parts each just short of it would hold every other write for the
                // whole plan (a review showed 3.6 s behind a 0.6 s wait).
                var next = parts.WaitToReadAsync().AsTask();
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (Task.WaitAny([next], left > TimeSpan.Zero ? left : TimeSpan.Zero) < 0)
                    throw new PartsTooSlowException(planWait);
                if (!next.GetAwaiter().GetResult())
                    break;
                while (parts.TryRead(out var rows))
                {
                    store.InsertMany(s, rows, Transitions.Accept);
                    count += rows.Count;
                }
            }
            alsoInTransaction?.Invoke(s);
            return count;
        }, ct, alone: true);

    /// <summary>The writer stopped waiting for the next part of rows (<see cref="AcceptAsync(ChannelReader{IReadOnlyList{MessageRow}}, TimeSpan, Action{WriteScope}?, CancellationToken)"/>); nothing of them was stored.</summary>
    public sealed class PartsTooSlowException(TimeSpan waited)
        : Exception($"The rows were not all given within {waited.TotalSeconds:0.###} s; nothing of them was stored.");

    /// <summary>
    /// An inbound reply, with what it implies in the same transaction: the sender's pending stop-on-reply messages
    /// are cancelled (<see cref="CancelOnReply"/>), and whatever <paramref name="alsoInTransaction"/> adds (suppressions).
    /// </summary>
    public Task<MessageRow> ReceiveAsync(MessageRow reply, string detail, Action<WriteScope>? alsoInTransaction = null, CancellationToken ct = default) =>
        Write(s =>
        {
            store.Insert(s, reply, Transitions.Receive, detail);
            CancelOnReply(s, reply);
            alsoInTransaction?.Invoke(s);
            return reply;
        }, ct);

    /// <summary>
    /// Transition reply-cancel: scheduled/queued stop-on-reply messages to the reply's sender, created before the
    /// reply was sent, → cancelled `replied` (their event names the reply).
    /// </summary>
    private IReadOnlyList<MessageRow> CancelOnReply(WriteScope s, MessageRow reply)
    {
        var address = reply.RecipientPhone ?? reply.RecipientEmail;
        if (address is null)
            return [];
        return store.TransitionMany(s, Transitions.ReplyCancel, MessageSql.CancelOnReply, new
        {
            Address = address, ReplyAt = reply.SentAt ?? reply.CreatedAt, Now = NowMs,
            Message = $"{address} replied ({reply.Id}); stopOnReply cancelled this message.",
        }, detail: $"cancelled: {address} replied ({reply.Id})");
    }

    /// <summary>
    /// Transition reply-cancel of one stop-on-reply message that its recipient's reply <paramref name="replyId"/> found
    /// not pending (it was being sent; see <see cref="MessageSql.ReplySince"/>), now back in the queue: → cancelled `replied`.
    /// </summary>
    public Task<MessageRow?> CancelRepliedAsync(MessageRow m, string replyId, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.ReplyCancel, MessageSql.CancelReplied, new
        {
            m.Id, Now = now, Message = $"{m.Recipient} replied ({replyId}) before this message went out; stopOnReply cancelled it.",
        }, detail: $"cancelled: {m.Recipient} replied ({replyId})"), ct);
    }

    /// <summary>The API stops a sequence: its pending steps → cancelled.</summary>
    public Task<IReadOnlyList<MessageRow>> CancelSequenceAsync(string sequenceId, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s =>
        {
            var cancelled = store.TransitionMany(s, Transitions.Cancel, MessageSql.CancelSequence, new { SequenceId = sequenceId, Now = now }, detail: detail);
            SealStoppedSteps(s, MessageSql.SealStoppedStepsOfSequence, new { SequenceId = sequenceId, Now = now }, now, detail);
            return cancelled;
        }, ct);
    }

    /// <summary>Steps a failed step stopped stay cancelled even if that step is confirmed late (<see cref="MessageSql.SealStoppedStepsOfSequence"/>); an event each, no webhook.</summary>
    private void SealStoppedSteps(WriteScope s, string sql, object parameters, long now, string detail)
    {
        foreach (var row in s.Connection.Query<MessageRow>(sql, parameters, s.Transaction))
            store.Note(s, row.Id, now, row.Status, "cancelled", $"{detail}: stays cancelled if the step that stopped it is confirmed late");
    }

    // ---- the dispatcher -----------------------------------------------------------------------------

    /// <summary>scheduled/queued and due → sending, owned by <paramref name="claim"/>. Exactly one claimer wins.</summary>
    public Task<MessageRow?> ClaimAsync(string id, string claim, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Claim, MessageSql.Claim, new { Id = id, Claim = claim, Now = now }, detail: detail), ct);
    }

    /// <summary>
    /// scheduled/queued and due → sending, and handed to <paramref name="channel"/> in the same write: once this is
    /// committed the row may go out, so a restart reconciles it with the channel instead of sending it again.
    /// </summary>
    /// <param name="marksStart">The channel stores when its send starts (<see cref="Channels.ChannelCapabilities.MarksStart"/>): the
    /// mark is left empty until then, and a cancel may still take the row.</param>
    public Task<MessageRow?> ClaimAndHandOffAsync(string id, string claim, string channel, bool dryRun, bool newConversation, CancellationToken ct = default,
        bool marksStart = false)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.HandOff, MessageSql.ClaimAndHandOff,
            new { Id = id, Claim = claim, Now = now, Channel = channel, DryRun = dryRun, NewConversation = newConversation,
                StartMark = marksStart ? (long?)null : MessageRow.BaselineUnread },
            detail: $"handed to {channel}"), ct);
    }

    public Task<MessageRow?> SentAsync(string id, string? claim, DateTimeOffset at, string? channelRef, string detail, string? code = null, CancellationToken ct = default, bool deferrable = false)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Sent, MessageSql.CompleteSent,
            new { Id = id, Claim = claim, SentAt = Time.ToMs(at), ChannelRef = channelRef, Now = now }, code: code, detail: detail), ct, deferrable: deferrable);
    }

    /// <summary>
    /// Before a channel's send goes out: its own position now (chat.db's MAX(ROWID) before a Messages script; null when it
    /// could not be read), on disk before the send, so that after a crash the rows the send can have written are known,
    /// and a send whose script never started is known too. Not a transition (no event, no news).
    /// False: the row is no longer this attempt's, and nothing may be sent.
    /// </summary>
    public Task<bool> KeepScriptBaselineAsync(string id, string claim, long? baseline, CancellationToken ct = default) =>
        Write(s => store.Execute(s, MessageSql.KeepScriptBaseline,
            new { Id = id, Claim = claim, Baseline = baseline ?? MessageRow.BaselineUnread }) == 1, ct);

    /// <summary>The channel took it; its confirmation comes later (the row stays sending).</summary>
    public Task<MessageRow?> ChannelAcceptedAsync(string id, string claim, string? channelRef, long? baseline, string detail, CancellationToken ct = default, bool deferrable = false)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.ChannelAccepted, MessageSql.CompleteAccepted,
            new { Id = id, Claim = claim, ChannelRef = channelRef, Baseline = baseline, Now = now }, code: "accepted", detail: detail), ct, deferrable: deferrable);
    }

    /// <summary>sending (owned by <paramref name="claim"/>) → failed with a named reason.</summary>
    public Task<MessageRow?> FailAsync(string id, string? claim, string code, string message, long? channelCode, CancellationToken ct = default, bool deferrable = false)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Fail, MessageSql.CompleteFailed,
            new { Id = id, Claim = claim, Code = code, Message = message, ChannelCode = channelCode, Now = now }), ct, deferrable: deferrable);
    }

    /// <summary>sending → queued again: nothing went out (released before the hand-off, proven not sent, circuit open).</summary>
    public Task<MessageRow?> RequeueAsync(string id, string? claim, long dueAt, DateTimeOffset? notBefore, string code, string detail, CancellationToken ct = default, bool deferrable = false)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Requeue, MessageSql.Requeue,
            new { Id = id, Claim = claim, DueAt = dueAt, NotBefore = notBefore is { } nb ? Time.ToMs(nb) : (long?)null, Now = now }, code: code, detail: detail), ct, deferrable: deferrable);
    }

    /// <summary>
    /// One pending message waits as queued until <paramref name="notBefore"/> (e.g. the new-conversation cap), with an event
    /// giving the reason: each time, as the reason is the message's own (again after a start, which decides holds again).
    /// </summary>
    public Task<MessageRow?> HoldAsync(string id, DateTimeOffset notBefore, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Hold, MessageSql.Hold, new { Id = id, NotBefore = Time.ToMs(notBefore), Now = now },
            code: "paced", detail: detail), ct);
    }

    /// <summary>Everything due on a line waits as queued until the hold ends; each message is told once.</summary>
    /// <param name="types">Only the due messages of these types (the ones an open circuit's channel carries); null: all.</param>
    public Task<IReadOnlyList<MessageRow>> HoldLineAsync(string lineId, DateTimeOffset notBefore, string detail, CancellationToken ct = default,
        IReadOnlyCollection<string>? types = null)
    {
        var now = NowMs;
        // A JSON array for json_each: the types are MessageType's constants, never input.
        var typeList = types is null ? null : "[" + string.Join(",", types.Select(t => $"\"{t}\"")) + "]";
        return Write<IReadOnlyList<MessageRow>>(s =>
        {
            var p = new { LineId = lineId, NotBefore = Time.ToMs(notBefore), Now = now, Types = typeList };
            var announced = store.TransitionMany(s, Transitions.Hold, MessageSql.HoldNewlyHeld, p, code: "paced", detail: detail);
            store.Execute(s, MessageSql.HoldLine, p);
            return announced;
        }, ct);
    }

    /// <summary>
    /// At a start, every line's held messages are decided again (their hold ends now; the dispatcher holds them anew, in due
    /// order: a hold of the whole line without another event, one of the message alone with its reason); on a line whose pacing
    /// settings changed each gets an event saying so, and the settings
    /// are saved, in the same transaction.
    /// </summary>
    public Task<IReadOnlyList<MessageRow>> ReleaseHoldsAsync(IReadOnlyList<(string LineId, string Settings, bool Changed)> lines, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write<IReadOnlyList<MessageRow>>(s =>
        {
            var released = new List<MessageRow>();
            foreach (var (lineId, settings, changed) in lines)
            {
                var p = new { LineId = lineId, Now = now };
                if (!changed)
                {
                    store.Execute(s, MessageSql.ReleaseHolds, p); // decided again as they were: no event
                    continue;
                }
                released.AddRange(store.TransitionMany(s, Transitions.Hold, MessageSql.ReleaseHolds, p,
                    code: "paced", detail: $"line {lineId}'s pacing settings changed since it was held: decided again by the new ones"));
                store.Execute(s, MessageSql.SaveLinePacing, new { LineId = lineId, Settings = settings, Now = now });
            }
            return released;
        }, ct);
    }

    /// <summary>An event without a status change (a retry of the channel).</summary>
    public Task NoteAsync(string id, string status, string code, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => { store.Note(s, id, now, status, code, detail); return true; }, ct);
    }

    // ---- the API ------------------------------------------------------------------------------------

    /// <summary>
    /// scheduled/queued → cancelled, and a handed-off send that has not started (<see cref="MessageSql.Cancellable"/>: it waits
    /// for Messages.app, busy with another line's script); null once its send started (or it is final).
    /// </summary>
    public Task<MessageRow?> CancelAsync(string id, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Cancel, MessageSql.Cancel, new { Id = id, Now = now }, detail: detail), ct);
    }

    public Task<IReadOnlyList<MessageRow>> CancelBatchAsync(string batchId, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s =>
        {
            var cancelled = store.TransitionMany(s, Transitions.Cancel, MessageSql.CancelBatch, new { BatchId = batchId, Now = now }, detail: detail);
            SealStoppedSteps(s, MessageSql.SealStoppedStepsOfBatch, new { BatchId = batchId, Now = now }, now, detail);
            return cancelled;
        }, ct, alone: true);
    }

    /// <summary>The code of the event of a PATCH that gave a time: that time was chosen (MessageSql.FailMissed reads it).</summary>
    public const string RescheduledCode = "rescheduled";

    /// <summary>New content and/or time of a scheduled message; null when it is no longer scheduled.</summary>
    public Task<MessageRow?> RescheduleAsync(string id, string? content, long? scheduledAt, string? timeZone, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s =>
        {
            // Its UPDATE trigger changes the text in the search index only for a row the index holds (migration 011); one
            // it does not hold yet is owed, and goes in with its new text at the next catch-up.
            s.Owe(MessageStore.SearchIndex, 1);
            return store.Transition(s, Transitions.Reschedule, MessageSql.Reschedule,
                new { Id = id, Content = content, ScheduledAt = scheduledAt, ScheduleTimeZone = timeZone, Now = now },
                code: scheduledAt is null ? "edited" : RescheduledCode, detail: detail);
        }, ct);
    }

    // ---- delivery: what the channel reports later ---------------------------------------------------

    /// <summary>The channel's own record of this send (a chat.db guid) is found.</summary>
    public Task<MessageRow?> MatchAsync(string id, string channelRef, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Match, DeliverySql.Match, new { Id = id, Guid = channelRef, Now = now }, code: "matched", detail: detail), ct);
    }

    /// <summary>sending → sent on the channel's word; delivery is watched until <paramref name="trackUntil"/>.</summary>
    public Task<MessageRow?> ConfirmAsync(string id, DateTimeOffset sentAt, DateTimeOffset? trackUntil, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Confirm, DeliverySql.ConfirmSent,
            new { Id = id, SentAt = Time.ToMs(sentAt), Now = now, TrackUntil = trackUntil is { } t ? Time.ToMs(t) : (long?)null }, code: "confirmed", detail: detail), ct);
    }

    /// <summary>failed/unconfirmed → sent: the channel's record showed up after the deadline.</summary>
    public Task<MessageRow?> ConfirmLateAsync(string id, DateTimeOffset sentAt, DateTimeOffset trackUntil, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Confirm, DeliverySql.ConfirmLate,
            new { Id = id, SentAt = Time.ToMs(sentAt), Now = now, TrackUntil = Time.ToMs(trackUntil) }, code: "confirmed", detail: detail), ct);
    }

    /// <summary>An unconfirmed send turns out to have failed: its reason is replaced by the real one.</summary>
    public Task<MessageRow?> FailLateAsync(string id, string code, string message, long channelError, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Fail, DeliverySql.FailLate,
            new { Id = id, Code = code, Message = message, ChannelError = channelError, Now = now }, code: "settled", detail: detail), ct);
    }

    /// <summary>sending → failed `unconfirmed`: no confirmation in time; still watched until <paramref name="trackUntil"/>.</summary>
    public Task<MessageRow?> FailUnconfirmedAsync(string id, string message, DateTimeOffset trackUntil, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Fail, DeliverySql.FailUnconfirmed,
            new { Id = id, Message = message, Now = now, TrackUntil = Time.ToMs(trackUntil) }), ct);
    }

    /// <summary>sending → failed on the channel's later word (chat.db error, Twilio undelivered).</summary>
    public Task<MessageRow?> FailDeliveryAsync(string id, string code, string message, long? channelError, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Fail, DeliverySql.Fail,
            new { Id = id, Code = code, Message = message, ChannelError = channelError, FallbackTo = (string?)null, Now = now }), ct);
    }

    /// <summary>
    /// sending → failed, and in the same transaction the message that goes out instead (an SMS for an iMessage). With
    /// <paramref name="settlingUnconfirmed"/>: a send already failed `unconfirmed` whose error 22 chat.db showed after the
    /// confirmation timeout; refused (null) when that message has a retry.
    /// </summary>
    public Task<(MessageRow Failed, MessageRow Fallback)?> FallbackAsync(string id, string code, string message, long channelError, MessageRow fallback,
        string fallbackDetail, CancellationToken ct = default, bool settlingUnconfirmed = false)
    {
        var now = NowMs;
        return Write<(MessageRow, MessageRow)?>(s =>
        {
            var failed = settlingUnconfirmed
                ? store.Transition(s, Transitions.Fail, DeliverySql.FailLateWithFallback,
                    new { Id = id, Code = code, Message = message, ChannelError = channelError, FallbackTo = fallback.Id, Now = now },
                    code: "settled", detail: "chat.db settled an unconfirmed send: it failed")
                : store.Transition(s, Transitions.Fail, DeliverySql.Fail,
                    new { Id = id, Code = code, Message = message, ChannelError = channelError, FallbackTo = fallback.Id, Now = now });
            if (failed is null)
                return null;
            // The fallback takes the failed step's place in its sequence (and its stop-on-reply and recipient hours).
            fallback.SequenceId ??= failed.SequenceId;
            fallback.SequenceStep ??= failed.SequenceStep;
            fallback.StopOnReply |= failed.StopOnReply;
            fallback.RecipientWindow ??= failed.RecipientWindow;
            fallback.RecipientTimeZone ??= failed.RecipientTimeZone;
            fallback.RecipientTimeZoneSource ??= failed.RecipientTimeZoneSource;
            store.Insert(s, fallback, Transitions.Fallback, fallbackDetail);
            // The address has no iMessage: the later steps that `auto` routed to iMessage go as SMS too, not each through its own error 22.
            if (failed.SequenceId is not null && fallback.Type == MessageType.Sms)
                store.TransitionMany(s, Transitions.Note, MessageSql.RouteLaterStepsAsSms, new { failed.SequenceId, Step = failed.SequenceStep ?? 0, Now = now },
                    code: "rerouted", detail: $"type auto: SMS, as step {failed.SequenceStep} ({failed.Id}) could not go over iMessage (error 22)");
            return (failed, fallback);
        }, ct);
    }

    public Task<MessageRow?> DeliveredAsync(string id, DateTimeOffset at, string detail, bool endTracking = false, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Delivered, endTracking ? DeliverySql.DeliveredFinal : DeliverySql.Delivered,
            new { Id = id, At = Time.ToMs(at), Now = now }, detail: detail, eventStatus: DeliveryState.Delivered), ct);
    }

    public Task<MessageRow?> ReadAsync(string id, DateTimeOffset at, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.Read, DeliverySql.Read, new { Id = id, At = Time.ToMs(at), Now = now },
            detail: detail, eventStatus: DeliveryState.Read), ct);
    }

    public Task<MessageRow?> NotDeliveredAsync(string id, string code, long? channelError, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.NotDelivered, DeliverySql.NotDelivered,
            new { Id = id, Code = code, Message = detail, ChannelError = channelError, Now = now }, code: code, detail: detail, eventStatus: DeliveryState.NotDelivered), ct);
    }

    /// <summary>Delivery tracking past its time ends (no event: nothing happened to the message).</summary>
    public Task<int> ExpireTrackingAsync(CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Execute(s, DeliverySql.ExpireTracking, new { Now = now }), ct);
    }

    // ---- after a restart ----------------------------------------------------------------------------

    /// <summary>A send whose process is gone: the channel's own records settle it from now on.</summary>
    public Task<MessageRow?> AwaitConfirmationAsync(string id, string detail, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.Transition(s, Transitions.ChannelAccepted, MessageSql.AwaitConfirmation, new { Id = id, Now = now },
            code: "awaiting", detail: detail), ct);
    }

    /// <summary>Schedules missed by more than <paramref name="cutoff"/> while the agent was down.</summary>
    /// <param name="except">Messages not to fail (queued again by the recovery that was on their way within the limit).</param>
    public Task<IReadOnlyList<MessageRow>> FailMissedAsync(DateTimeOffset cutoff, string maxLatenessText, IReadOnlyCollection<string> activeLines,
        IReadOnlyCollection<string> except, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.TransitionMany(s, Transitions.Fail, MessageSql.FailMissed,
            new { Cutoff = Time.ToMs(cutoff), Now = now, MaxLatenessText = maxLatenessText, Active = SqlList.Of(activeLines), Except = SqlList.Of(except) }), ct);
    }

    /// <summary>
    /// The pending messages a restore left that may have gone out since the backup (<see cref="MessageSql.FailRestored"/>);
    /// the restore's marks are removed in the same transaction, so this happens once.
    /// </summary>
    /// <param name="sent">JSON array of {id, sentAt, ref}: the ones the replaced database showed sent after the backup; sent again.</param>
    /// <param name="wentOn">JSON array: the ids the replaced database showed sending or failed after the backup.</param>
    /// <param name="cancelled">JSON array: the ids it showed cancelled after the backup; cancelled again.</param>
    public async Task<IReadOnlyList<MessageRow>> FailRestoredAsync(long restoredAt, string backup, string sent = "[]", string wentOn = "[]", string cancelled = "[]",
        CancellationToken ct = default)
    {
        var now = NowMs;
        // First, on its own: the ones sent after the backup. Their unit gives their sequences' next steps a due time, and
        // a next step due before the restore may have gone out too (unreadable in the replaced file): the second unit's
        // FailRestored must see that due time (a review found such a follow-up sent a second time).
        await Write(s => store.TransitionMany(s, Transitions.Sent, MessageSql.SentRestored, new { Now = now, Sent = sent },
            detail: $"sent after the backup ({backup}) the database was restored from, as the database it replaced shows; not sent again"), ct);
        return await Write(s =>
        {
            store.TransitionMany(s, Transitions.Cancel, MessageSql.CancelRestored, new { Now = now, Ids = cancelled },
                detail: $"cancelled after the backup ({backup}) the database was restored from, as the database it replaced shows");
            var failed = store.TransitionMany(s, Transitions.Fail, MessageSql.FailRestoredWentOn, new { Now = now, Ids = wentOn, Backup = backup }).ToList();
            failed.AddRange(store.TransitionMany(s, Transitions.Fail, MessageSql.FailRestored, new { Now = now, RestoredAt = restoredAt, Backup = backup }));
            s.Connection.Execute(DatabaseRestore.ClearMarks, transaction: s.Transaction);
            return (IReadOnlyList<MessageRow>)failed;
        }, ct);
    }

    /// <summary>
    /// The writer owes the search indexes the rows left out of them (start-up could not add them: a full disk); it adds
    /// them when idle or before a search, and keeps trying while the disk refuses. Writes nothing itself.
    /// </summary>
    public Task OweSearchIndexAsync(CancellationToken ct = default) =>
        Write(s =>
        {
            s.Owe(MessageStore.SearchIndex, 1);
            return true;
        }, ct);

    /// <summary>Pending messages of lines no longer configured.</summary>
    public Task<IReadOnlyList<MessageRow>> FailOrphansAsync(IReadOnlyCollection<string> lineIds, CancellationToken ct = default)
    {
        var now = NowMs;
        return Write(s => store.TransitionMany(s, Transitions.Fail, MessageSql.FailOrphans, new { Now = now, Lines = lineIds.ToArray() }), ct);
    }
}
