using Dapper;
using LineAgent.Api;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.Batches;

public sealed record BatchRejection(string LeadId, string Code, string Message, DateTimeOffset At);

public sealed record BatchDto(string BatchId, int Total, IReadOnlyDictionary<string, int> ByStatus, IReadOnlyDictionary<string, int> ByType,
    int Rejected, IReadOnlyList<MessageDto> Messages, IReadOnlyList<BatchRejection> Rejections);

public sealed record BatchCancelResult(string BatchId, int Cancelled, IReadOnlyList<string> MessageIds);

internal static class BatchesApi
{
    public static IEndpointRouteBuilder MapBatches(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/messages/bulk", Bulk).WithTags("Batches").WithName("SendBulk").ProducesProblem(404).AcceptsIdempotencyKey()
            .WithSummary("Send to many leads")
            .WithDescription("Renders `content` for each lead (`leadIds` or `leadFilter`) and stores one message per lead in one batch; " +
                "answers 202 once all are stored, and sending goes on per line, paced. A lead that cannot be sent gets a rejected entry with the reason.");
        var g = app.MapGroup("/api/batches").WithTags("Batches");
        g.MapGet("/{batchId}", Get).WithName("GetBatch").WithSummary("Get a batch")
            .WithDescription("Counts per status and per type, every message and every rejected lead of the batch.");
        g.MapPost("/{batchId}/cancel", Cancel).WithName("CancelBatch").WithSummary("Cancel a batch")
            .WithDescription("Cancels the batch's messages that have not gone out (`scheduled`, `queued`).");
        return app;
    }

    /// <summary>Idempotency-Key: the same key and body replay the first 202; another body is a 409.</summary>
    internal static async Task<Results<Accepted<BulkResponse>, ValidationProblem, ProblemHttpResult, ContentHttpResult>> Bulk(
        BulkRequest body, HttpContext http, BulkSend bulk, IdempotencyStore idempotency, CancellationToken ct)
    {
        var key = IdempotencyStore.FromHeader(http, out var keyProblem);
        if (keyProblem is not null)
            return Problems.Validation([keyProblem]);
        var hash = key is null ? null : IdempotencyStore.Hash("POST /api/messages/bulk", body);
        if (key is not null && await ReplayAsync(key, hash!, idempotency, ct) is { } replay)
            return replay;
        BulkOutcome outcome;
        try
        {
            outcome = await bulk.SendAsync(body, ct, key, hash);
        }
        catch (Microsoft.Data.Sqlite.SqliteException e) when (key is not null && IdempotencyStore.IsUniqueViolation(e))
        {
            return await ReplayAsync(key, hash!, idempotency, ct) ?? throw new InvalidOperationException("idempotency key vanished");
        }
        return outcome switch
        {
            BulkOutcome.Done d => TypedResults.Accepted($"/api/batches/{Uri.EscapeDataString(d.Response.BatchId)}", d.Response),
            BulkOutcome.Invalid i => Problems.Validation(i.Problems),
            BulkOutcome.NotFound n => Problems.NotFound(n.Code, n.Detail),
            _ => throw new InvalidOperationException(),
        };
    }

    private static async Task<Results<Accepted<BulkResponse>, ValidationProblem, ProblemHttpResult, ContentHttpResult>?> ReplayAsync(
        string key, string hash, IdempotencyStore idempotency, CancellationToken ct)
    {
        var existing = await idempotency.FindAsync(key, ct);
        if (existing is null)
            return null;
        if (existing.RequestHash != hash || existing.ResponseBody is null)
            return Problems.Conflict("idempotency_key_reused",
                "This Idempotency-Key was used with a different request; use a new key for a new bulk send.");
        return TypedResults.Content(existing.ResponseBody, "application/json", System.Text.Encoding.UTF8, existing.ResponseStatus ?? 202);
    }

    internal static async Task<Results<Ok<BatchDto>, ProblemHttpResult>> Get(string batchId, Db db, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var messages = (await c.QueryAsync<MessageRow>(new CommandDefinition(
            "SELECT * FROM messages WHERE batch_id = @B ORDER BY seq", new { B = batchId }, cancellationToken: ct))).AsList();
        var rejections = (await c.QueryAsync<(string LeadId, string Code, string Message, long CreatedAt)>(new CommandDefinition(
            "SELECT lead_id AS LeadId, code AS Code, message AS Message, created_at AS CreatedAt FROM batch_rejections WHERE batch_id = @B ORDER BY id",
            new { B = batchId }, cancellationToken: ct))).Select(x => new BatchRejection(x.LeadId, x.Code, x.Message, Time.FromMs(x.CreatedAt))).ToList();
        if (messages.Count == 0 && rejections.Count == 0)
            return Problems.NotFound("batch_not_found", $"No batch '{batchId}'.");
        var outbound = messages.Where(m => m.Direction == "outbound").ToList();
        var byStatus = outbound.GroupBy(m => m.Status).ToDictionary(g => g.Key, g => g.Count());
        if (rejections.Count > 0)
            byStatus["rejected"] = rejections.Count;
        return TypedResults.Ok(new BatchDto(batchId, outbound.Count + rejections.Count, byStatus,
            outbound.GroupBy(m => m.Type).ToDictionary(g => g.Key, g => g.Count()), rejections.Count,
            messages.Select(MessageDto.From).ToList(), rejections));
    }

    internal static async Task<Results<Ok<BatchCancelResult>, ProblemHttpResult>> Cancel(
        string batchId, MessageLifecycle lifecycle, CancellationToken ct)
    {
        var cancelled = await lifecycle.CancelBatchAsync(batchId, "batch cancelled through the API", ct);
        if (cancelled.Count == 0)
        {
            await using var c = await lifecycle.Store.Db.OpenAsync(ct);
            var exists = await c.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT (SELECT COUNT(*) FROM messages WHERE batch_id = @B) + (SELECT COUNT(*) FROM batch_rejections WHERE batch_id = @B)",
                new { B = batchId }, cancellationToken: ct));
            if (exists == 0)
                return Problems.NotFound("batch_not_found", $"No batch '{batchId}'.");
        }
        return TypedResults.Ok(new BatchCancelResult(batchId, cancelled.Count, cancelled.Select(m => m.Id).ToList()));
    }
}
