using Dapper;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Messages;

/// <summary>
/// The messages table: reads for anyone, and the write primitives that only <see cref="MessageLifecycle"/>
/// calls, inside the writer's transaction. Every status change is a compare-and-set that appends to
/// message_events and runs the in-transaction hooks (the webhook outbox) in the same transaction, and is
/// announced on the notifier after the commit.
/// </summary>
public sealed class MessageStore(Db db, MessageNotifier notifier)
{
    public Db Db => db;

    /// <summary>Hooks that run inside a status-change transaction (webhook outbox): the row, its event's status, and the transition.</summary>
    public event Action<WriteScope, MessageRow, string, string>? ChangedInTransaction;

    public async Task<MessageRow?> GetAsync(string id, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(MessageSql.GetById, new { Id = id }, cancellationToken: ct));
    }

    /// <summary>The id of the newest reply from <paramref name="m"/>'s recipient since it was created (<see cref="MessageSql.ReplySince"/>); null when none.</summary>
    public async Task<string?> ReplySinceAsync(MessageRow m, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(MessageSql.ReplySince,
            new { Phone = m.RecipientPhone, Email = m.RecipientEmail, Since = m.CreatedAt, m.FallbackFrom }, cancellationToken: ct));
    }

    public async Task<IReadOnlyList<MessageEventRow>> EventsAsync(string id, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<MessageEventRow>(new CommandDefinition(MessageSql.EventsFor, new { Id = id }, cancellationToken: ct))).AsList();
    }

    public async Task<IReadOnlyList<MessageRow>> QueryAsync(string sql, object? parameters = null, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<MessageRow>(new CommandDefinition(sql, parameters, cancellationToken: ct))).AsList();
    }

    // ---- inside the writer's transaction (MessageLifecycle only) -------------------------------------

    /// <summary>Inserts a new row with its first event; two statements, prepared once, serve every row of a bulk.</summary>
    internal void Insert(WriteScope s, MessageRow row, string transition, string? detail = null)
    {
        s.Owe(SearchIndex, 1);
        s.Statement(MessageSql.InsertWithoutReturning).Execute(row);
        s.Statement(MessageSql.InsertEvent).Execute(FirstEvent(row, detail));
        Changed(s, row, row.Status, transition);
    }

    /// <summary>A new row's first event: its status, and why (or how it is scheduled).</summary>
    private static MessageEventRow FirstEvent(MessageRow row, string? detail = null) => new()
    {
        MessageId = row.Id, At = row.UpdatedAt, Status = row.Status, Code = row.ErrorCode,
        Detail = detail ?? (row.ErrorCode is null ? InsertDetail(row) : row.ErrorMessage),
    };

    /// <summary>Rows per INSERT statement for many new rows (<see cref="InsertMany"/>).</summary>
    internal const int RowsPerInsert = 25;

    /// <summary>
    /// As <see cref="Insert"/> for each of <paramref name="rows"/>, in order: the rows and then their first events go in
    /// <see cref="RowsPerInsert"/> at a time (one statement start instead of 25; a 10,000-lead bulk spent most of its
    /// writer's time starting statements), the rest one at a time; then each row's hooks, as for one.
    /// </summary>
    internal void InsertMany(WriteScope s, IReadOnlyList<MessageRow> rows, string transition)
    {
        if (rows.Count < RowsPerInsert)
        {
            foreach (var row in rows)
                Insert(s, row, transition);
            return;
        }
        s.Owe(SearchIndex, rows.Count);
        var events = new MessageEventRow[rows.Count];
        for (var i = 0; i < rows.Count; i++)
            events[i] = FirstEvent(rows[i]);
        InsertRows(s, MessageSql.InsertWithoutReturning, rows);
        InsertRows(s, MessageSql.InsertEvent, events);
        foreach (var row in rows)
            Changed(s, row, row.Status, transition);
    }

    private static void InsertRows<T>(WriteScope s, string sql, IReadOnlyList<T> rows)
    {
        var many = s.Statement(sql, RowsPerInsert);
        var i = 0;
        for (; i + RowsPerInsert <= rows.Count; i += RowsPerInsert)
            many.ExecuteRows(rows, i);
        var one = s.Statement(sql);
        for (; i < rows.Count; i++)
            one.Execute(rows[i]);
    }

    /// <summary>
    /// The two full-text indexes of messages (content and name; recipients), filled by the writer rather than by insert
    /// triggers (migration 008), and not at every commit: one FTS5 insert per commit wrote a new segment of each index
    /// and merged segments at every commit, about a sixth of the writer's time under the POST load (README Performance).
    /// The writer adds every row above the highest one each index holds once 1,000 are owed, after 1 s without other
    /// work, and before a search is read (<see cref="MessageHistory"/>, <see cref="DbWriter.CatchUpAsync"/>), so a search
    /// still finds every message answered before it; at start (DatabaseStartup) for rows a stop left owed. Read from the
    /// indexes themselves, so rows written by anything else are added too. The update and delete triggers touch only
    /// rows an index already holds (migration 011); a row changed before it is indexed goes in with its new values.
    /// </summary>
    internal static readonly DeferredWork SearchIndex = new("search index", IndexNewForSearch, batch: 1_000, idle: TimeSpan.FromSeconds(1));

    /// <summary>
    /// The id of a message other than <paramref name="except"/> that sends <paramref name="id"/> again and was not cancelled
    /// (a cancelled one sent nothing; the message may be retried again), in the writer's transaction; null when none does:
    /// a retry of it, or the SMS it fell back to (an iMessage to a number without iMessage, error 22).
    /// </summary>
    internal static string? RetryOf(WriteScope s, string id, string except) =>
        s.Connection.QueryFirstOrDefault<string>("""
            SELECT id FROM messages INDEXED BY ix_messages_retry_of WHERE retry_of = @Id AND id <> @Except AND status <> 'cancelled'
            UNION ALL
            SELECT f.id FROM messages AS o JOIN messages AS f ON f.id = o.fallback_to WHERE o.id = @Id AND f.status <> 'cancelled'
            LIMIT 1
            """, new { Id = id, Except = except }, s.Transaction);

    /// <summary>Adds every row above the highest one each index holds, now (whoever wrote them).</summary>
    internal static void IndexNewForSearch(WriteScope s) => s.Prepared(MessageSql.IndexNewForSearch).ExecuteNonQuery();

    /// <summary>A compare-and-set UPDATE ... RETURNING; when it changed the row, its event. Null: not in the expected state.</summary>
    internal MessageRow? Transition(WriteScope s, string transition, string sql, object parameters, string? code = null, string? detail = null,
        string? eventStatus = null, bool recordEvent = true)
    {
        var row = QueryRow(s, sql, parameters);
        if (row is null)
            return null;
        if (recordEvent)
            AddEvent(s, row, eventStatus ?? row.Status, code ?? row.ErrorCode,
                detail ?? (row.Status == MessageStatus.Failed ? row.ErrorMessage : null), transition);
        else
            Announce(s, row, transition);
        return row;
    }

    /// <summary>
    /// The row a transition's UPDATE ... RETURNING * changed, or null; through a command prepared once on the writer's
    /// connection (<see cref="WriteScope.Bound"/>), read with Dapper's mapping. More than one row is a bug in the SQL.
    /// </summary>
    private static MessageRow? QueryRow(WriteScope s, string sql, object parameters)
    {
        using var reader = s.Bound(sql, parameters).ExecuteReader();
        if (!reader.Read())
            return null;
        var row = reader.GetRowParser<MessageRow>()(reader);
        if (reader.Read())
            throw new InvalidOperationException($"A transition changed more than one row: {sql}");
        return row;
    }

    /// <summary>Like <see cref="Transition"/> for statements that change many rows.</summary>
    internal IReadOnlyList<MessageRow> TransitionMany(WriteScope s, string transition, string sql, object parameters, string? code = null, string? detail = null)
    {
        var rows = s.Connection.Query<MessageRow>(sql, parameters, s.Transaction).AsList();
        foreach (var row in rows)
            AddEvent(s, row, row.Status, code ?? row.ErrorCode, detail ?? row.ErrorMessage, transition);
        return rows;
    }

    /// <summary>An event without a status change of its own (a retry, a pacing hold).</summary>
    internal void Note(WriteScope s, string messageId, long at, string status, string? code, string? detail)
    {
        s.Statement(MessageSql.InsertEvent).Execute(new MessageEventRow { MessageId = messageId, At = at, Status = status, Code = code, Detail = detail });
    }

    /// <summary>A statement without events (bookkeeping such as the end of delivery tracking).</summary>
    internal int Execute(WriteScope s, string sql, object parameters)
    {
        return s.Connection.Execute(sql, parameters, s.Transaction);
    }

    private void AddEvent(WriteScope s, MessageRow row, string status, string? code, string? detail, string transition)
    {
        Note(s, row.Id, row.UpdatedAt, status, code, detail);
        Changed(s, row, status, transition);
    }

    /// <summary>After a change's event: the in-transaction hooks (webhook outbox, sequences), and the news after the commit.</summary>
    private void Changed(WriteScope s, MessageRow row, string status, string transition)
    {
        ChangedInTransaction?.Invoke(s, row, status, transition);
        Announce(s, row, transition);
    }

    private void Announce(WriteScope s, MessageRow row, string transition) =>
        s.AfterCommit(() => notifier.Publish(new MessageChange(row, transition)));

    private static string InsertDetail(MessageRow r) => r.Status switch
    {
        MessageStatus.Scheduled when r.IsWaiting =>
            $"accepted, follow-up {r.SequenceStep} of {r.SequenceId}: due {Durations.Format(TimeSpan.FromMilliseconds(r.FollowUpAfter ?? 0))} after step {r.SequenceStep - 1} is sent",
        MessageStatus.Scheduled => $"accepted, scheduled for {(r.ScheduledAt is { } at ? Storage.Time.Iso(at) : "")}",
        MessageStatus.Received => "received",
        _ => "accepted",
    };
}
