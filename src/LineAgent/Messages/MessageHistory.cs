using System.Data.Common;
using Dapper;
using LineAgent.Storage;

namespace LineAgent.Messages;

/// <summary>The history as the API reads it: a page of a filter, the whole filter for an export, a message's replies.</summary>
public sealed class MessageHistory(Db db, DbWriter writer, ILogger<MessageHistory> log)
{
    /// <summary>
    /// One page, newest first, and the position the next page starts below (null: nothing more); one row more than the
    /// page is read to know whether there is one.
    /// </summary>
    public async Task<(List<MessageRow> Rows, long? NextBefore)> PageAsync(MessageFilter filter, CancellationToken ct)
    {
        await CatchUpSearchIndexAsync(filter, ct);
        await using var c = await db.OpenAsync(ct);
        long? floor = null;
        if (filter.ScansText)
        {
            // A text scan reads at most TextScanSpan positions per page.
            var top = filter.Before ?? (await c.ExecuteScalarAsync<long?>(new CommandDefinition("SELECT MAX(seq) FROM messages", cancellationToken: ct)) ?? 0) + 1;
            floor = top - filter.TextScanSpan;
            filter = filter with { After = floor };
        }
        var (sql, p) = filter.ToSql(filter.Limit + 1);
        var rows = (await c.QueryAsync<MessageRow>(new CommandDefinition(sql, p, cancellationToken: ct))).AsList();
        if (rows.Count > filter.Limit)
        {
            rows.RemoveAt(rows.Count - 1);
            return (rows, rows[^1].Seq);
        }
        // The span read without filling the page: the next page goes on below it, while there are rows below.
        return (rows, floor is > 0 ? floor + 1 : null);
    }

    /// <summary>
    /// Runs the export's query and reads its first row before returning, so a failing query is still an error the
    /// caller can answer with a status; the rest is read as it is written.
    /// </summary>
    public async Task<ExportRows> OpenExportAsync(MessageFilter filter, CancellationToken ct)
    {
        await CatchUpSearchIndexAsync(filter, ct);
        var (sql, p) = filter.ToSql(limit: null);
        var c = await db.OpenAsync(ct);
        try
        {
            var rows = c.QueryUnbufferedAsync<MessageRow>(sql, p).GetAsyncEnumerator(ct);
            var hasFirst = await rows.MoveNextAsync();
            return new ExportRows(c, rows, hasFirst);
        }
        catch
        {
            await c.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// A filter read through a full-text index first has every message committed so far added to it
    /// (<see cref="MessageStore.SearchIndex"/>). When that write fails (a full disk: /api/status says so), the search
    /// still answers from the index as it is, which lacks the messages added since it was last caught up; it is logged.
    /// </summary>
    private async Task CatchUpSearchIndexAsync(MessageFilter filter, CancellationToken ct)
    {
        if (!filter.UsesSearchIndex)
            return;
        try
        {
            await writer.CatchUpAsync(MessageStore.SearchIndex, ct);
        }
        catch (ObjectDisposedException)
        {
            // The agent is stopping: the index is caught up as the writer stops, and at the next start.
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning(e, "Search answered without the newest messages: adding them to the search index failed");
        }
    }

    public async Task<IReadOnlyList<MessageRow>> RepliesAsync(string id, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<MessageRow>(new CommandDefinition(
            "SELECT * FROM messages WHERE reply_to = @Id AND direction = 'inbound' ORDER BY seq", new { Id = id }, cancellationToken: ct))).AsList();
    }
}

/// <summary>An export's rows, read from an open connection; dispose it when written.</summary>
public sealed class ExportRows(DbConnection connection, IAsyncEnumerator<MessageRow> rows, bool hasFirst) : IAsyncDisposable
{
    public async IAsyncEnumerable<MessageRow> ReadAsync()
    {
        if (!hasFirst)
            yield break;
        yield return rows.Current;
        while (await rows.MoveNextAsync())
            yield return rows.Current;
    }

    public async ValueTask DisposeAsync()
    {
        await rows.DisposeAsync();
        await connection.DisposeAsync();
    }
}
