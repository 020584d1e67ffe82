using LineAgent.Api;
using LineAgent.Channels;
using LineAgent.Messages;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LineAgent.Lines;

public sealed record ChannelHealthDto(string Type, string Channel, string State, string? Detail);

/// <summary>
/// <see cref="Enabled"/> says whether pacing holds this line's sends now, the same as <c>usage.pacingEnabled</c>:
/// false when it is switched off, and in dry run unless Agent:DryRunPacing; <see cref="Note"/> says why it is off.
/// </summary>
public sealed record PacingDto(bool Enabled, double MinGapSeconds, double JitterSeconds, int MaxPerHour, int MaxPerDay,
    int MaxNewConversationsPerDay, SendWindowOptions Window, string? Note);

public sealed record LineDto(string Id, string? Name, bool Active, bool FallbackToSms, string SmsVia,
    IReadOnlyList<ChannelHealthDto> Health, Channels.Messages.MessagesHealthReport? Messages, PacingDto Pacing, Scheduling.LineUsage? Usage);

public sealed record UpdateLineRequest(bool? Active);

/// <summary>Builds the view of a line: configuration, live channel health, pacing and usage.</summary>
public sealed class LineViews(LineRegistry lines, ChannelRouter router, ILineUsage usage, ChannelResilience resilience,
    Channels.Messages.MessagesHealth messagesHealth, Microsoft.Extensions.Options.IOptions<Hosting.AgentOptions> agent)
{
    public async Task<LineDto> ViewAsync(LineOptions line, CancellationToken ct)
    {
        var health = new List<ChannelHealthDto>();
        foreach (var type in MessageType.Concrete)
        {
            var channel = router.Resolve(line, type);
            ChannelHealth h;
            try { h = await channel.CheckHealthAsync(line, type, ct); }
            catch (Exception e) when (e is not OperationCanceledException) { h = new(channel.Name, ChannelHealth.Unavailable, e.Message); }
            if (resilience.OpenUntil(channel.Name, line.Id) is { } open)
                h = new ChannelHealth(channel.Name, ChannelHealth.Degraded,
                    $"held until {Storage.Time.Iso(open)}: {resilience.WhyHeld(channel.Name, line.Id)}; due messages wait as queued. {h.Detail}".Trim());
            health.Add(new ChannelHealthDto(type, h.Channel, h.State, h.Detail));
        }
        var p = line.Pacing;
        var messages = agent.Value.DryRun ? null : await messagesHealth.CheckForViewAsync(ct);
        // One answer to "is this line paced": the pacer's (the dry-run outbox is not paced unless Agent:DryRunPacing).
        Scheduling.LineUsage? today;
        // A database that cannot be read (damaged while the agent runs) leaves the usage out; the rest of the view is live.
        try { today = await usage.TodayAsync(line, ct) as Scheduling.LineUsage; }
        catch (Exception e) when (Storage.StorageHealth.FaultOf(e) is not null) { today = null; }
        var paced = today?.PacingEnabled ?? p.Enabled;
        var note = paced ? null
            : !p.Enabled ? "Pacing is switched off for this line (Lines:N:Pacing:Enabled)."
            : agent.Value.DryRun ? "Dry run: the outbox is not paced (Agent:DryRunPacing=true paces it like a real line)."
            : "Pacing does not apply to this line's channels.";
        return new LineDto(line.Id, line.Name, lines.IsActive(line.Id), line.FallbackToSms, line.Sms.Via, health, messages,
            new PacingDto(paced, p.MinGap.TotalSeconds, p.Jitter.TotalSeconds, p.MaxPerHour, p.MaxPerDay, p.MaxNewConversationsPerDay, p.Window, note),
            today);
    }

    public async Task<IReadOnlyList<LineDto>> AllAsync(CancellationToken ct)
    {
        var views = new List<LineDto>();
        foreach (var line in lines.All)
            views.Add(await ViewAsync(line, ct));
        return views;
    }
}

/// <summary>Today's counts and limits of a line (pacing fills this in).</summary>
public interface ILineUsage
{
    Task<object?> TodayAsync(LineOptions line, CancellationToken ct);
}

internal static class LinesApi
{
    public static IEndpointRouteBuilder MapLines(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/lines").WithTags("Lines");
        g.MapGet("/", List).WithName("ListLines").WithSummary("List lines")
            .WithDescription("Every line of this agent with its channel health, pacing limits and today's usage.");
        g.MapGet("/{id}", Get).WithName("GetLine").WithSummary("Get a line").WithDescription("One line with its channel health, pacing and usage.");
        g.MapPatch("/{id}", Update).WithName("UpdateLine").WithSummary("Pause or resume a line")
            .WithDescription("`active: false` pauses the line (its due messages wait); `true` resumes it.");
        return app;
    }

    internal static async Task<Ok<IReadOnlyList<LineDto>>> List(LineViews views, CancellationToken ct) =>
        TypedResults.Ok(await views.AllAsync(ct));

    internal static async Task<Results<Ok<LineDto>, ProblemHttpResult>> Get(string id, LineRegistry lines, LineViews views, CancellationToken ct) =>
        lines.Find(id) is { } line ? TypedResults.Ok(await views.ViewAsync(line, ct)) : LineNotFound(id);

    internal static async Task<Results<Ok<LineDto>, ValidationProblem, ProblemHttpResult>> Update(
        string id, UpdateLineRequest body, LineRegistry lines, LineViews views, CancellationToken ct)
    {
        var line = lines.Find(id);
        if (line is null)
            return LineNotFound(id);
        if (body.Active is null)
            return Problems.Validation([new("active", "missing_change", "Give active: true or false.")]);
        await lines.SetActiveAsync(id, body.Active.Value, ct);
        return TypedResults.Ok(await views.ViewAsync(line, ct));
    }

    private static ProblemHttpResult LineNotFound(string id) =>
        Problems.NotFound("line_not_found", $"No line '{id}' on this agent.");
}
