using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;

namespace LineAgent.Api;

/// <summary>What /api/status reads from the database, in one connection.</summary>
public sealed class StatusQuery(Db db)
{
    public sealed record Snapshot(StatusCounts Counts, DateTimeOffset? NextScheduledAt, MessageEventRow? LastFailure);

    public async Task<Snapshot> ReadAsync(DateTimeOffset midnight, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var counts = await c.QuerySingleAsync<StatusCounts>(new CommandDefinition("""
            SELECT
              (SELECT COUNT(*) FROM messages WHERE status = 'scheduled') AS Scheduled,
              (SELECT COUNT(*) FROM messages WHERE status = 'queued') AS Queued,
              (SELECT COUNT(*) FROM messages WHERE status = 'sending') AS Sending,
              (SELECT COUNT(*) FROM messages WHERE status = 'sent' AND sent_at >= @Midnight) AS SentToday,
              (SELECT COUNT(*) FROM messages WHERE status = 'failed' AND updated_at >= @Midnight) AS FailedToday
            """, new { Midnight = Time.ToMs(midnight) }, cancellationToken: ct));
        // Follow-ups waiting for their previous step are "due" at the end of time: not the next scheduled send.
        var next = await c.ExecuteScalarAsync<long?>(new CommandDefinition(
            "SELECT MIN(due_at) FROM messages INDEXED BY ix_messages_due WHERE status IN ('scheduled','queued') AND due_at < @Waiting",
            new { Waiting = SequenceRows.WaitingDueAt }, cancellationToken: ct));
        var last = await c.QuerySingleOrDefaultAsync<MessageEventRow>(new CommandDefinition(
            "SELECT * FROM message_events WHERE status = 'failed' ORDER BY at DESC, id DESC LIMIT 1", cancellationToken: ct));
        return new Snapshot(counts, Time.FromMs(next), last);
    }
}
