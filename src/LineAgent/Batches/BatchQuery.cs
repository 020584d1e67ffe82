using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;

namespace LineAgent.Batches;

/// <summary>A batch as stored: its messages (in the order they were made) and the leads it rejected.</summary>
public sealed class BatchQuery(Db db)
{
    public async Task<(List<MessageRow> Messages, List<BatchRejection> Rejections)> GetAsync(string batchId, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var messages = (await c.QueryAsync<MessageRow>(new CommandDefinition(
            "SELECT * FROM messages WHERE batch_id = @B ORDER BY seq", new { B = batchId }, cancellationToken: ct))).AsList();
        var rejections = (await c.QueryAsync<(string LeadId, string Code, string Message, long CreatedAt)>(new CommandDefinition(
            "SELECT lead_id AS LeadId, code AS Code, message AS Message, created_at AS CreatedAt FROM batch_rejections WHERE batch_id = @B ORDER BY id",
            new { B = batchId }, cancellationToken: ct))).Select(x => new BatchRejection(x.LeadId, x.Code, x.Message, Time.FromMs(x.CreatedAt))).ToList();
        return (messages, rejections);
    }

    public async Task<bool> ExistsAsync(string batchId, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE batch_id = @B) OR EXISTS (SELECT 1 FROM batch_rejections WHERE batch_id = @B)",
            new { B = batchId }, cancellationToken: ct)) != 0;
    }
}
