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
    Channels.Messages.MessagesHealth messagesHealth, Microsoft.Extensions.Options.IOptions<Hosting.AgentOptions> agent,
    Microsoft.Extensions.Options.IOptions<Bridge.BridgeOptions> bridge, TimeProvider time, IHostApplicationLifetime lifetime)
{
    /// <summary>A last answer older than this is not shown as the channel's health while a new check runs.</summary>
    private static readonly TimeSpan AnswerKeptFor = TimeSpan.FromMinutes(5);

    private readonly Lock _checksGate = new();
    private readonly Dictionary<(string Channel, string Line, string Type), (Task<ChannelHealth> Task, DateTimeOffset Since)> _checks = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Channel, string Line, string Type), (ChannelHealth Health, DateTimeOffset At)> _answers = new();

    public async Task<LineDto> ViewAsync(LineOptions line, CancellationToken ct)
    {
        StartChecks(line);
        return await BuildAsync(line, ct);
    }

    private async Task<LineDto> BuildAsync(LineOptions line, CancellationToken ct)
    {
        var health = new List<ChannelHealthDto>();
        foreach (var type in MessageType.Concrete)
        {
            var channel = router.Resolve(line, type);
            ChannelHealth h;
            if (channel.Capabilities.HealthAnswersInTime)
            {
                try { h = await channel.CheckHealthAsync(line, type, ct); }
                catch (Exception e) when (e is not OperationCanceledException) { h = new(channel.Name, ChannelHealth.Unavailable, e.Message); }
            }
            else
                h = await HealthForViewAsync(channel, line, type, ct);
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

    /// <summary>
    /// A channel's health as a view waits for it: the check's answer if it comes within Bridge:HealthWaitForViews of the
    /// check's start (every check of a view is started before the first is awaited, so a view waits that long in all, not
    /// once per line and type); past that, the last answer (under <see cref="AnswerKeptFor"/> old) while the check has run less
    /// than <see cref="Channels.Messages.MessagesHealth.SlowAfter"/>, or for as long as it runs when that answer was
    /// `unavailable` (no flapping between the two while a server stays silent); else `degraded`, saying that the check has
    /// not answered. The check goes on (until the agent stops) and its answer is the next view's. Messages bounds its own
    /// check the same way (<see cref="ChannelCapabilities.HealthAnswersInTime"/>). Before, an SMTP server that took the
    /// connection and never greeted, a Twilio that did not answer, or a send holding the SMTP connection held GET
    /// /api/status for up to Email:Smtp:Timeout (30 s), and the menu bar, which gives the agent 5 s, said the agent was not
    /// answering.
    /// </summary>
    private async Task<ChannelHealth> HealthForViewAsync(IMessageChannel channel, LineOptions line, string type, CancellationToken ct)
    {
        var key = (channel.Name, line.Id, type);
        var (check, since) = Running(channel, line, type, again: false); // the one StartChecks began for this view
        if (await HealthWait.WithinAsync(check, since, bridge.Value.HealthWaitForViews, time, ct) is { } answer)
            return answer;
        var now = time.GetUtcNow();
        var waited = Math.Max(1, (int)(now - since).TotalSeconds);
        if (_answers.TryGetValue(key, out var last) && now - last.At < AnswerKeptFor)
        {
            if (last.Health.State == ChannelHealth.Unavailable)
                return last.Health with { Detail = $"{last.Health.Detail} (checking again for {waited} s)".TrimStart() };
            if (now - since < Channels.Messages.MessagesHealth.SlowAfter)
                return last.Health;
        }
        return new ChannelHealth(channel.Name, ChannelHealth.Degraded, $"no answer to the health check for {waited} s; still checking");
    }

    /// <summary>Starts the checks a view of <paramref name="line"/> waits for only so long (<see cref="HealthForViewAsync"/>).</summary>
    private void StartChecks(LineOptions line)
    {
        foreach (var type in MessageType.Concrete)
            if (router.Resolve(line, type) is { Capabilities.HealthAnswersInTime: false } channel)
                Running(channel, line, type);
    }

    /// <summary>
    /// The check of (channel, line, type) in flight, else a new one (the channels cache their answers: SMTP's for a minute).
    /// <paramref name="again"/> false: one that has completed is taken as it is, not started again.
    /// </summary>
    private (Task<ChannelHealth> Task, DateTimeOffset Since) Running(IMessageChannel channel, LineOptions line, string type, bool again = true)
    {
        var key = (channel.Name, line.Id, type);
        lock (_checksGate)
        {
            if (!_checks.TryGetValue(key, out var running) || (again && running.Task.IsCompleted))
                _checks[key] = running = (CheckAsync(channel, line, type, key), time.GetUtcNow());
            return running;
        }
    }

    private async Task<ChannelHealth> CheckAsync(IMessageChannel channel, LineOptions line, string type, (string, string, string) key)
    {
        await Task.Yield(); // the channel's own synchronous part (a lock, a socket write) runs outside _checksGate
        ChannelHealth h;
        try { h = await channel.CheckHealthAsync(line, type, lifetime.ApplicationStopping); }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            h = new(channel.Name, ChannelHealth.Unavailable, "not checked: the agent is stopping");
        }
        catch (Exception e) { h = new(channel.Name, ChannelHealth.Unavailable, e.Message); }
        _answers[key] = (h, time.GetUtcNow());
        return h;
    }

    public async Task<IReadOnlyList<LineDto>> AllAsync(CancellationToken ct)
    {
        foreach (var line in lines.All)
            StartChecks(line);
        var views = new List<LineDto>();
        foreach (var line in lines.All)
            views.Add(await BuildAsync(line, ct));
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
