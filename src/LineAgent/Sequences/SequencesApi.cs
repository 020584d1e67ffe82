using System.ComponentModel;
using LineAgent.Api;
using LineAgent.Batches;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.Sequences;

/// <summary>A lead's message and its follow-ups.</summary>
public sealed record SequenceDto(
    string Id,
    [property: Description("active (a step is pending), completed (every step sent) or stopped (a step failed or was cancelled, or a reply stopped it).")]
    string Status,
    string LineId,
    string? LeadId,
    string? BatchId,
    string? RecipientPhone,
    string? RecipientEmail,
    [property: Description("Why it stopped (only when `status` is stopped): the code of the step that stopped it (replied, sequence_stopped, a failure code) or cancelled.")]
    string? StoppedBy,
    [property: Description("Every step in order (an SMS that replaced a failed iMessage follows it with the same sequenceStep).")]
    IReadOnlyList<MessageDto> Steps);

public sealed record SequenceCancelResult(string SequenceId, int Cancelled, IReadOnlyList<string> MessageIds, SequenceDto Sequence);

internal static class SequencesApi
{
    public static IEndpointRouteBuilder MapSequences(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/sequences").WithTags("Sequences");
        g.MapGet("/{id}", Get).WithName("GetSequence").WithSummary("Get a sequence")
            .WithDescription("A message and its follow-ups, step by step.");
        g.MapPost("/{id}/cancel", Cancel).WithName("CancelSequence").WithSummary("Cancel a sequence")
            .WithDescription("Cancels every step still scheduled or queued, and one `sending` that still waits for Messages.app and has reached nothing.");
        return app;
    }

    internal static async Task<Results<Ok<SequenceDto>, ProblemHttpResult>> Get(string id, MessageStore store, CancellationToken ct) =>
        await LoadAsync(id, store, ct) is { } sequence ? TypedResults.Ok(sequence) : NotFound(id);

    internal static async Task<Results<Ok<SequenceCancelResult>, ProblemHttpResult>> Cancel(string id, MessageLifecycle lifecycle, CancellationToken ct)
    {
        if (await LoadAsync(id, lifecycle.Store, ct) is null)
            return NotFound(id);
        var cancelled = await lifecycle.CancelSequenceAsync(id, "sequence cancelled through the API", ct);
        return TypedResults.Ok(new SequenceCancelResult(id, cancelled.Count, cancelled.Select(m => m.Id).ToList(), (await LoadAsync(id, lifecycle.Store, ct))!));
    }

    private static async Task<SequenceDto?> LoadAsync(string id, MessageStore store, CancellationToken ct)
    {
        var steps = await store.QueryAsync(MessageSql.SequenceSteps, new { SequenceId = id }, ct);
        if (steps.Count == 0)
            return null;
        var first = steps[0];
        var stopper = steps.FirstOrDefault(s => s.Status is MessageStatus.Failed or MessageStatus.Cancelled && s.FallbackTo is null);
        var status = steps.Any(s => MessageStatus.IsPending(s.Status) || s.Status == MessageStatus.Sending) ? "active"
            : stopper is null ? "completed" : "stopped";
        return new SequenceDto(id, status, first.LineId, first.LeadId, first.BatchId, first.RecipientPhone, first.RecipientEmail,
            // Only a stopped sequence names what stopped it (an active one said `stoppedBy` while a step was still to go).
            status != "stopped" || stopper is null ? null : stopper.ErrorCode ?? "cancelled", steps.Select(MessageDto.From).ToList());
    }

    private static ProblemHttpResult NotFound(string id) => Problems.NotFound("sequence_not_found", $"No sequence '{id}'.");
}

/// <summary>The services of follow-ups, the bulk preview and Twilio replies.</summary>
public static class SequenceServices
{
    public static IServiceCollection AddFollowUps(this IServiceCollection services)
    {
        services.AddSingleton<Scheduling.PacingSimulation>();
        services.AddSingleton<Batches.BulkPreview>();
        services.AddSingleton<Channels.Twilio.TwilioInboundPoller>();
        services.AddHostedService(sp => sp.GetRequiredService<Channels.Twilio.TwilioInboundPoller>());
        return services;
    }

    internal static IEndpointRouteBuilder MapFollowUps(this IEndpointRouteBuilder app) => app.MapSequences().MapBulkPreview();
}
