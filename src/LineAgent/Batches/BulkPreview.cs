using System.ComponentModel;
using System.Globalization;
using LineAgent.Api;
using LineAgent.Messages;
using LineAgent.Scheduling;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.Batches;

/// <summary>A follow-up of one lead as the preview sees it.</summary>
public sealed record FollowUpPreview(
    int Step,
    string Content,
    [property: Description("When the line's pacer would hand it over, if its previous step goes out as estimated; null when it would be later than 400 days from now (the pacer is not played further).")]
    DateTimeOffset? EstimatedSendAt);

/// <summary>One lead of a preview: what /bulk would send it, and when.</summary>
public sealed record BulkPreviewEntry(
    string LeadId,
    [property: Description("The rendered text.")] string? Content,
    [property: Description("imessage, sms or email: what auto would pick (availability).")] string? Type,
    [property: Description("The rendered subject of an email (the line's default subject when the request gives none); null for other types and when rejected.")] string? Subject,
    string? LineId,
    [property: Description("When the line's pacer would hand it over (gap with jitter at its mean, caps, send window, recipient hours, what is already queued); null when rejected, or when it would be later than 400 days from now (the pacer is not played further).")]
    DateTimeOffset? EstimatedSendAt,
    MessageError? Error,
    IReadOnlyList<FollowUpPreview> FollowUps,
    string? RecipientTimeZone,
    [property: Description("number, lead or line.")] string? RecipientTimeZoneSource);

/// <summary>The answer of POST /api/messages/bulk/preview: nothing stored, nothing sent.</summary>
public sealed record BulkPreviewResponse(
    string LineId,
    [property: Description("The line's zone: byDay counts days there.")] string TimeZone,
    [property: Description("Leads in the request.")] int Total,
    [property: Description("Leads that would get a message.")] int Sendable,
    [property: Description("Leads that would be refused without a message (see each entry's error), as /bulk counts them: a suppressed lead gets a failed message, so it is neither sendable nor rejected.")] int Rejected,
    [property: Description("Leads on the suppression list: each would get a failed message (suppressed). total = sendable + rejected + suppressed.")] int Suppressed,
    [property: Description("Messages already pending on the line, which go first where they are due first.")] int AlreadyQueued,
    [property: Description("The first estimated hand-off of any message the request would create (follow-ups included).")] DateTimeOffset? FirstSendAt,
    [property: Description("The last estimated hand-off of any message the request would create (follow-ups included), within 400 days from now.")] DateTimeOffset? LastSendAt,
    [property: Description("Messages the request would create (follow-ups included) that would go out later than 400 days from now: their estimatedSendAt is null, and they are not in byDay.")] int BeyondHorizon,
    [property: Description("Messages per type (follow-ups included).")] IReadOnlyDictionary<string, int> ByType,
    [property: Description("Messages per day (yyyy-MM-dd in the line's zone) by estimated hand-off.")] IReadOnlyDictionary<string, int> ByDay,
    IReadOnlyList<BulkPreviewEntry> Messages);

/// <summary>/bulk's plan (the same code), then the line's pacer played forward instead of storing.</summary>
public sealed class BulkPreview(BulkSend bulk, PacingSimulation simulation)
{
    public async Task<BulkPlanOutcome> PreviewAsync(BulkRequest r, CancellationToken ct)
    {
        var outcome = await bulk.PlanAsync(r, ct);
        if (outcome is not BulkPlanOutcome.Planned { Plan: var plan })
            return outcome;
        var result = await simulation.RunAsync(plan.Line, plan.Rows, plan.Now, ct);
        return new Previewed(plan, Answer(plan, result));
    }

    /// <summary>A plan with its estimates.</summary>
    public sealed record Previewed(BulkPlan Plan, BulkPreviewResponse Response) : BulkPlanOutcome;

    private static BulkPreviewResponse Answer(BulkPlan plan, PacingSimulation.Result result)
    {
        DateTimeOffset? At(MessageRow row) => result.SendAt.TryGetValue(row, out var at) ? at : null;
        var entries = plan.Leads.Select(l =>
        {
            if (l.Rows.Count == 0)
                return new BulkPreviewEntry(l.LeadId, null, null, null, plan.Line.Id, null, l.Error, [], null, null);
            var first = l.Rows[0];
            return new BulkPreviewEntry(l.LeadId, first.Content, first.Type, first.Subject, first.LineId, l.Error is null ? At(first) : null, l.Error,
                l.Rows.Skip(1).Select(f => new FollowUpPreview(f.SequenceStep ?? 0, f.Content, At(f))).ToList(),
                first.RecipientTimeZone, first.RecipientTimeZoneSource);
        }).ToList();
        var sends = plan.Rows.Where(r => MessageStatus.IsPending(r.Status)).Select(r => (Row: r, At: At(r))).ToList();
        var estimated = sends.Where(s => s.At is not null).Select(s => s.At!.Value).ToList();
        return new BulkPreviewResponse(
            plan.Line.Id, result.Zone.Id, plan.Leads.Count, plan.Leads.Count(l => l.Error is null), plan.Leads.Count(l => l.Rows.Count == 0),
            plan.Leads.Count(l => l.Error is not null && l.Rows.Count > 0),
            result.AlreadyPending,
            estimated.Count > 0 ? estimated.Min() : null, estimated.Count > 0 ? estimated.Max() : null, sends.Count - estimated.Count,
            sends.GroupBy(s => s.Row.Type).ToDictionary(g => g.Key, g => g.Count()),
            estimated.GroupBy(a => TimeZoneInfo.ConvertTime(a, result.Zone).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))
                .OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count()),
            entries);
    }
}

internal static class BulkPreviewApi
{
    public static IEndpointRouteBuilder MapBulkPreview(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/messages/bulk/preview", Preview).WithTags("Batches").WithName("PreviewBulk")
            .WithMetadata(BulkSend.FieldValidation).ProducesProblem(404)
            .WithSummary("Preview a bulk send")
            .WithDescription("What /bulk would do with this body, and when each message would go (the line's pacer, simulated); stores and sends nothing.");
        return app;
    }

    internal static async Task<Results<Ok<BulkPreviewResponse>, ValidationProblem, ProblemHttpResult>> Preview(
        BulkRequest body, BulkPreview preview, CancellationToken ct) =>
        await preview.PreviewAsync(body, ct) switch
        {
            BulkPreview.Previewed p => TypedResults.Ok(p.Response),
            BulkPlanOutcome.Invalid i => Problems.Validation(i.Problems),
            BulkPlanOutcome.NotFound n => Problems.NotFound(n.Code, n.Detail),
            _ => throw new InvalidOperationException(),
        };
}
