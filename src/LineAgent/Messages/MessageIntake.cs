using LineAgent.Channels;
using LineAgent.Hosting;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Messages;

/// <summary>Turns validated drafts into stored rows (on disk before any answer) and wakes the dispatcher.</summary>
public sealed class MessageIntake(MessageLifecycle lifecycle, TimeProvider time, IOptions<AgentOptions> agent, LinePacer pacer)
{
    /// <summary>
    /// Why <paramref name="d"/> could never be sent: its recipient's hours never fall within the line's send window (on
    /// a paced line; <see cref="LinePacer.NeverInWindow"/>). Such a message was accepted and held again and again, for
    /// ever. Null when it can be sent.
    /// </summary>
    public string? NeverInWindow(MessageDraft d, DateTimeOffset now) =>
        // The row (with an id of its own) only where pacing applies: it was a second row per request otherwise (allocation trace).
        pacer.Applies(d.Line, d.Type) ? pacer.NeverInWindow(d.Line, NewRow(d, now), now) : null;

    public MessageRow NewRow(MessageDraft d, DateTimeOffset now)
    {
        var scheduled = d.ScheduledAt is { } at && at > now;
        var nowMs = Time.ToMs(now);
        return new MessageRow
        {
            Id = Ids.New("msg", now),
            Content = d.Content,
            Subject = d.Subject,
            Type = d.Type,
            RequestedType = d.RequestedType,
            Status = scheduled ? MessageStatus.Scheduled : MessageStatus.Queued,
            LineId = d.Line.Id,
            LeadId = d.LeadId,
            BatchId = d.BatchId,
            RecipientPhone = d.RecipientPhone,
            RecipientEmail = d.RecipientEmail,
            RecipientName = d.RecipientName,
            ScheduledAt = d.ScheduledAt is { } s ? Time.ToMs(s) : null,
            ScheduleTimeZone = d.TimeZone,
            DueAt = scheduled ? Time.ToMs(d.ScheduledAt!.Value) : nowMs,
            CreatedAt = nowMs,
            UpdatedAt = nowMs,
            DryRun = agent.Value.DryRun,
            StopOnReply = d.Sequence?.StopOnReply ?? false,
            RecipientWindow = d.Sequence?.Window?.ToString(),
            RecipientTimeZone = d.RecipientZone?.Zone.Id,
            RecipientTimeZoneSource = d.RecipientZone?.Source,
        };
    }

    /// <summary>
    /// The message and its follow-ups (if any): step 0 as <see cref="NewRow"/>, then each follow-up `scheduled`
    /// but waiting (no due time until the step before it is sent), stop-on-reply, linked by one sequence id.
    /// <paramref name="followUpContents"/> replaces the drafts' follow-up texts (a bulk renders them per lead).
    /// </summary>
    public List<MessageRow> NewRows(MessageDraft d, DateTimeOffset now, IReadOnlyList<string>? followUpContents = null)
    {
        var first = NewRow(d, now);
        var rows = new List<MessageRow> { first };
        if (d.Sequence is not { FollowUps.Count: > 0 } sequence)
            return rows;
        first.SequenceId = Ids.New("seq", now);
        first.SequenceStep = 0;
        for (var i = 0; i < sequence.FollowUps.Count; i++)
        {
            var step = NewRow(d, now);
            step.Content = followUpContents?[i] ?? sequence.FollowUps[i].Content;
            step.Status = MessageStatus.Scheduled;
            step.ScheduledAt = null;
            step.ScheduleTimeZone = null;
            step.DueAt = SequenceRows.WaitingDueAt;
            step.FollowUpAfter = (long)sequence.FollowUps[i].After.TotalMilliseconds;
            step.StopOnReply = true;
            step.SequenceId = first.SequenceId;
            step.SequenceStep = i + 1;
            rows.Add(step);
        }
        return rows;
    }

    /// <summary>
    /// Stores a new message (and its follow-ups). With <paramref name="retryOf"/> it is that failed message's retry, and
    /// is refused with <see cref="AlreadyRetriedException"/> when the message already has one: looked for in the same
    /// transaction, so two retries at once (a double click) make one message, not two sends.
    /// </summary>
    public async Task<MessageRow> AcceptAsync(MessageDraft draft, string? idempotencyKey, string? requestHash, CancellationToken ct,
        string? retryOf = null)
    {
        var now = time.GetUtcNow();
        var rows = NewRows(draft, now);
        var row = rows[0];
        row.RetryOf = retryOf;
        var stored = await lifecycle.AcceptAsync(rows, idempotencyKey is null && retryOf is null ? null : s =>
        {
            // The key first: a second request with the same key is a replay of the first (its unique key), not a second retry.
            if (idempotencyKey is not null)
                IdempotencyStore.Insert(s.Connection, s.Transaction, idempotencyKey, requestHash!, row.Id, Time.ToMs(now));
            if (retryOf is not null && MessageStore.RetryOf(s, retryOf, except: row.Id) is { } existing)
                throw new AlreadyRetriedException(retryOf, existing);
        }, ct);
        return stored[0];
    }
}

/// <summary>A failed message that already has a retry (<see cref="RetryId"/>); retrying it again would send twice.</summary>
public sealed class AlreadyRetriedException(string messageId, string retryId)
    : Exception($"Message {messageId} was already retried as {retryId}.")
{
    public string MessageId { get; } = messageId;
    public string RetryId { get; } = retryId;

}
