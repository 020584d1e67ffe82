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
        app.MapPost("/api/messages/bulk", Bulk).WithTags("Batches").WithName("SendBulk").WithMetadata(BulkSend.FieldValidation)
            .ProducesProblem(404).AcceptsIdempotencyKey()
            .WithSummary("Send to many leads")
            .WithDescription("Renders `content` for each lead (`leadIds` or `leadFilter`) and stores one message per lead in one batch; " +
                "answers 202 once all are stored, and sending goes on per line, paced. A lead that cannot be sent gets a rejected entry with the reason.");
        var g = app.MapGroup("/api/batches").WithTags("Batches");
        g.MapGet("/{batchId}", Get).WithName("GetBatch").WithSummary("Get a batch")
            .WithDescription("Counts per status and per type, every message and every rejected lead of the batch.");
        g.MapPost("/{batchId}/cancel", Cancel).WithName("CancelBatch").WithSummary("Cancel a batch")
            .WithDescription("Cancels the batch's messages that have not gone out: `scheduled`, `queued`, and a `sending` one still waiting " +
                "for Messages.app (busy with another line's send) that has reached nothing.");
        return app;
    }

    /// <summary>Idempotency-Key: <see cref="IdempotencyFilter"/> replays the first 202 or refuses another body before this runs.</summary>
    internal static async Task<Results<Accepted<BulkResponse>, ValidationProblem, ProblemHttpResult>> Bulk(
        BulkRequest body, HttpContext http, BulkSend bulk, CancellationToken ct)
    {
        var key = http.Features.Get<IdempotencyRequest>();
        var outcome = await bulk.SendAsync(body, ct, key?.Key, key?.Hash);
        return outcome switch
        {
            BulkOutcome.Done d => TypedResults.Accepted($"/api/batches/{Uri.EscapeDataString(d.Response.BatchId)}", d.Response),
            BulkOutcome.Invalid i => Problems.Validation(i.Problems),
            BulkOutcome.NotFound n => Problems.NotFound(n.Code, n.Detail),
            _ => throw new InvalidOperationException(),
        };
    }

    internal static async Task<Results<Ok<BatchDto>, ProblemHttpResult>> Get(string batchId, BatchQuery query, CancellationToken ct)
    {
        var (messages, rejections) = await query.GetAsync(batchId, ct);
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
        string batchId, MessageLifecycle lifecycle, BatchQuery query, CancellationToken ct)
    {
        var cancelled = await lifecycle.CancelBatchAsync(batchId, "batch cancelled through the API", ct);
        if (cancelled.Count == 0)
        {
            if (!await query.ExistsAsync(batchId, ct))
                return Problems.NotFound("batch_not_found", $"No batch '{batchId}'.");
        }
        return TypedResults.Ok(new BatchCancelResult(batchId, cancelled.Count, cancelled.Select(m => m.Id).ToList()));
    }
}
