using LineAgent.Channels;
using LineAgent.Hosting;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Messages;

/// <summary>Turns validated drafts into stored rows (on disk before any answer) and wakes the dispatcher.</summary>
public sealed class MessageIntake(MessageLifecycle lifecycle, TimeProvider time, IOptions<AgentOptions> agent)
{
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
        };
    }

    public async Task<MessageRow> AcceptAsync(MessageDraft draft, string? idempotencyKey, string? requestHash, CancellationToken ct,
        Action<MessageRow>? customize = null)
    {
        var now = time.GetUtcNow();
        var row = NewRow(draft, now);
        customize?.Invoke(row);
        var stored = await lifecycle.AcceptAsync([row], idempotencyKey is null ? null
            : s => IdempotencyStore.Insert(s.Connection, s.Transaction, idempotencyKey, requestHash!, row.Id, Time.ToMs(now)), ct);
        return stored[0];
    }

}
