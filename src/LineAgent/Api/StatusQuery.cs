using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;

namespace LineAgent.Api;

/// <summary>What /api/status reads from the database, in one connection.</summary>
public sealed class StatusQuery(Db db)
{
    public sealed record Snapshot(StatusCounts Counts, DateTimeOffset? NextScheduledAt, MessageEventRow? LastFailure);

    internal const string CountsSql = """
            SELECT
              (SELECT COUNT(*) FROM messages WHERE status = 'scheduled') AS Scheduled,
              (SELECT COUNT(*) FROM messages WHERE status = 'queued') AS Queued,
              (SELECT COUNT(*) FROM messages WHERE status = 'sending') AS Sending,
              (SELECT COUNT(*) FROM messages INDEXED BY ix_messages_time
                 WHERE COALESCE(sent_at, scheduled_at, created_at) >= @Midnight AND COALESCE(sent_at, scheduled_at, created_at) < @Until
                   AND status = 'sent' AND sent_at >= @Midnight) AS SentToday,
              (SELECT COUNT(DISTINCT e.message_id) FROM message_events e INDEXED BY ix_message_events_failed CROSS JOIN messages m
                 WHERE e.status = 'failed' AND e.at >= @Midnight AND m.id = e.message_id AND m.status = 'failed' AND m.updated_at >= @Midnight) AS FailedToday
        """;

    /// <summary>
    /// Today's counts read only today's rows: the sent ones through the history's time index (a sent row's time is its
    /// sent_at), the failed ones through today's failure events (every change to failed records one). Both used to read
    /// every sent or failed row's table page: 0.26 s per call on the bench's 1,000,000-row history, which the menu-bar
    /// plugin asks for every 30 s. A row that failed earlier and was only touched today (its delivery tracking ending)
    /// no longer counts as failed today.
    /// </summary>
    /// <summary>When any line next has something to send: the earliest due time or hold end (<see cref="MessageSql.PendingDueTimesAnyLine"/>).</summary>
    /// <param name="sends">Whether a line sends now: a paused line's messages wait for its resume, and were named as next, at a
    /// time already past (probe J).</param>
    internal static async Task<long?> NextDueAtAsync(Microsoft.Data.Sqlite.SqliteConnection c, CancellationToken ct, Func<string, bool>? sends = null)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = MessageSql.PendingDueTimesAnyLine;
        cmd.Parameters.AddWithValue("@Waiting", SequenceRows.WaitingDueAt);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        long? earliest = null;
        while (await reader.ReadAsync(ct))
        {
            var due = reader.GetInt64(0);
            if (due >= (earliest ?? long.MaxValue))
                break;
            if (sends is not null && !sends(reader.GetString(2)))
                continue;
            var at = reader.IsDBNull(1) ? due : Math.Max(due, reader.GetInt64(1));
            if (at < (earliest ?? long.MaxValue))
                earliest = at;
        }
        return earliest;
    }

    public async Task<Snapshot> ReadAsync(DateTimeOffset midnight, CancellationToken ct, Func<string, bool>? sends = null)
    {
        await using var c = await db.OpenAsync(ct);
        var counts = await c.QuerySingleAsync<StatusCounts>(new CommandDefinition(CountsSql, new { Midnight = Time.ToMs(midnight), Until = Time.ToMs(midnight.AddHours(26)) }, cancellationToken: ct));
        var next = await NextDueAtAsync(c, ct, sends);
        var last = await c.QuerySingleOrDefaultAsync<MessageEventRow>(new CommandDefinition(
            "SELECT * FROM message_events WHERE status = 'failed' ORDER BY at DESC, id DESC LIMIT 1", cancellationToken: ct));
        return new Snapshot(counts, Time.FromMs(next), last);
    }
}
