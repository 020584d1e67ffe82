using System.Data;
using Dapper;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Messages;

/// <summary>
/// Reads and changes message rows. Every status change is one transaction that updates the row
/// compare-and-set, appends to message_events, and is announced on the notifier after commit.
/// </summary>
public sealed class MessageStore(Db db, TimeProvider time, MessageNotifier notifier)
{
    public Db Db => db;
    public long NowMs => Storage.Time.ToMs(time.GetUtcNow());

    /// <summary>Hooks that run inside a status-change transaction (webhook outbox).</summary>
    public event Action<SqliteConnection, IDbTransaction, MessageRow, string>? ChangedInTransaction;

    public async Task<MessageRow?> GetAsync(string id, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(MessageSql.GetById, new { Id = id }, cancellationToken: ct));
    }

    public async Task<IReadOnlyList<MessageEventRow>> EventsAsync(string id, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<MessageEventRow>(new CommandDefinition(MessageSql.EventsFor, new { Id = id }, cancellationToken: ct))).AsList();
    }

    /// <summary>
    /// Inserts new rows (with their first event) in one transaction; <paramref name="inTransaction"/> adds
    /// more work to it. Two prepared statements serve every row, so a bulk of 10,000 stays fast.
    /// </summary>
    public async Task<IReadOnlyList<MessageRow>> InsertAsync(
        IReadOnlyList<MessageRow> rows, Func<SqliteConnection, IDbTransaction, Task>? inTransaction = null, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        await using var insert = RowCommand.Create(c, tx, MessageSql.InsertWithoutReturning);
        await using var addEvent = RowCommand.Create(c, tx, MessageSql.InsertEvent);
        foreach (var row in rows)
        {
            RowCommand.Bind(insert, row);
            await insert.ExecuteNonQueryAsync(ct);
            var e = new MessageEventRow
            {
                MessageId = row.Id, At = row.UpdatedAt, Status = row.Status, Code = row.ErrorCode,
                Detail = row.ErrorCode is null ? InsertDetail(row) : row.ErrorMessage,
            };
            RowCommand.Bind(addEvent, e);
            await addEvent.ExecuteNonQueryAsync(ct);
            ChangedInTransaction?.Invoke(c, tx, row, row.Status);
        }
        if (inTransaction is not null)
            await inTransaction(c, tx);
        await tx.CommitAsync(ct);
        foreach (var row in rows)
            notifier.Publish(row);
        return rows;
    }

    /// <summary>
    /// Runs a compare-and-set UPDATE ... RETURNING and, when it changed the row, records the event.
    /// Returns null when the row was not in the expected state (someone else owns it).
    /// </summary>
    public async Task<MessageRow?> TransitionAsync(
        string sql, object parameters, string? code = null, string? detail = null, bool recordEvent = true, CancellationToken ct = default,
        string? eventStatus = null)
    {
        await using var c = await db.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var row = await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(sql, parameters, tx, cancellationToken: ct));
        if (row is null)
            return null;
        if (recordEvent)
            await AddEventAsync(c, tx, row, eventStatus ?? row.Status, code ?? row.ErrorCode, detail ?? (row.Status == MessageStatus.Failed ? row.ErrorMessage : null), ct);
        await tx.CommitAsync(ct);
        notifier.Publish(row);
        return row;
    }

    /// <summary>
    /// A compare-and-set transition and, in the same transaction, a new message linked to it (a fallback
    /// or a reply), so neither can exist without the other.
    /// </summary>
    public async Task<(MessageRow Changed, MessageRow Inserted)?> TransitionAndInsertAsync(
        string sql, object parameters, MessageRow insert, string insertDetail, string? code = null, string? detail = null,
        Func<SqliteConnection, IDbTransaction, Task>? inTransaction = null, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var changed = await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(sql, parameters, tx, cancellationToken: ct));
        if (changed is null)
            return null;
        await AddEventAsync(c, tx, changed, changed.Status, code ?? changed.ErrorCode, detail ?? changed.ErrorMessage, ct);
        var inserted = await c.QuerySingleAsync<MessageRow>(new CommandDefinition(MessageSql.Insert, insert, tx, cancellationToken: ct));
        await AddEventAsync(c, tx, inserted, inserted.Status, null, insertDetail, ct);
        if (inTransaction is not null)
            await inTransaction(c, tx);
        await tx.CommitAsync(ct);
        notifier.Publish(changed);
        notifier.Publish(inserted);
        return (changed, inserted);
    }

    /// <summary>Inserts one row with its first event and extra work in the same transaction.</summary>
    public async Task<MessageRow> InsertOneAsync(MessageRow row, string detail, Func<SqliteConnection, IDbTransaction, Task>? inTransaction, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var saved = await c.QuerySingleAsync<MessageRow>(new CommandDefinition(MessageSql.Insert, row, tx, cancellationToken: ct));
        await AddEventAsync(c, tx, saved, saved.Status, null, detail, ct);
        if (inTransaction is not null)
            await inTransaction(c, tx);
        await tx.CommitAsync(ct);
        notifier.Publish(saved);
        return saved;
    }

    /// <summary>Like <see cref="TransitionAsync"/> for statements that change many rows.</summary>
    public async Task<IReadOnlyList<MessageRow>> TransitionManyAsync(string sql, object parameters, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var rows = (await c.QueryAsync<MessageRow>(new CommandDefinition(sql, parameters, tx, cancellationToken: ct))).AsList();
        foreach (var row in rows)
            await AddEventAsync(c, tx, row, row.Status, row.ErrorCode, row.ErrorMessage, ct);
        await tx.CommitAsync(ct);
        foreach (var row in rows)
            notifier.Publish(row);
        return rows;
    }

    /// <summary>Announces a change made outside this store's methods (after its commit).</summary>
    public void Publish(MessageRow row) => notifier.Publish(row);

    /// <summary>Records an event without a status change (e.g. "delivered", "held by pacing").</summary>
    public async Task AddEventAsync(string messageId, string status, string? code, string? detail, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition(MessageSql.InsertEvent,
            new { MessageId = messageId, At = NowMs, Status = status, Code = code, Detail = detail }, cancellationToken: ct));
    }

    private async Task AddEventAsync(SqliteConnection c, IDbTransaction tx, MessageRow row, string status, string? code, string? detail, CancellationToken ct)
    {
        await c.ExecuteAsync(new CommandDefinition(MessageSql.InsertEvent,
            new { MessageId = row.Id, At = row.UpdatedAt, Status = status, Code = code, Detail = detail }, tx, cancellationToken: ct));
        ChangedInTransaction?.Invoke(c, tx, row, status);
    }

    /// <summary>A prepared command whose @Parameters are bound from the same-named properties of a row.</summary>
    private static class RowCommand
    {
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<(Type, string), System.Reflection.PropertyInfo[]> Maps = new();

        public static SqliteCommand Create(SqliteConnection c, SqliteTransaction tx, string sql)
        {
            var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = sql;
            return cmd;
        }

        public static void Bind<T>(SqliteCommand cmd, T row)
        {
            var props = Maps.GetOrAdd((typeof(T), cmd.CommandText), key => System.Text.RegularExpressions.Regex
                .Matches(key.Item2, @"@(\w+)").Select(m => m.Groups[1].Value).Distinct()
                .Select(n => typeof(T).GetProperty(n) ?? throw new InvalidOperationException($"{typeof(T).Name} has no {n}")).ToArray());
            if (cmd.Parameters.Count == 0)
            {
                foreach (var p in props)
                    cmd.Parameters.Add(new SqliteParameter("@" + p.Name, null));
                cmd.Prepare();
            }
            for (var i = 0; i < props.Length; i++)
                cmd.Parameters[i].Value = props[i].GetValue(row) switch
                {
                    null => DBNull.Value,
                    bool b => b ? 1L : 0L,
                    var v => v,
                };
        }
    }

    private static string InsertDetail(MessageRow r) => r.Status switch
    {
        MessageStatus.Scheduled => $"accepted, scheduled for {Storage.Time.FromMs(r.ScheduledAt):O}",
        MessageStatus.Received => "received",
        _ => "accepted",
    };
}
