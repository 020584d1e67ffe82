using Dapper;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LineAgent.Api;

public sealed record StatusCounts(long Scheduled, long Queued, long Sending, long SentToday, long FailedToday);

public sealed record LastError(string? MessageId, string? Code, string? Message, DateTimeOffset At);

public sealed record AgentStatus(
    string Version, DateTimeOffset StartedAt, long UptimeSeconds, bool DryRun, string? DryRunOutbox, string DataDir,
    IReadOnlyList<LineDto> Lines, StatusCounts? Counts, DateTimeOffset? NextScheduledAt, LastError? LastError, StorageState Storage,
    RecoveryPending? Recovery);

/// <summary>When the agent started (for uptime).</summary>
public sealed class AgentClock(TimeProvider time)
{
    public DateTimeOffset StartedAt { get; } = time.GetUtcNow();
}

internal static class StatusApi
{
    public static IEndpointRouteBuilder MapStatus(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Text("ok")).WithTags("Status").ExcludeFromDescription();
        app.MapGet("/api/status", Status).WithTags("Status").WithName("GetStatus").WithSummary("Get the agent's status")
            .WithDescription("Version, uptime, dry run, lines with health and usage, counts, the next scheduled time, storage and the last error.");
        return app;
    }

    internal static async Task<Ok<AgentStatus>> Status(
        StatusQuery query, LineViews views, AgentClock clock, TimeProvider time, IOptions<AgentOptions> agent, DataDirectory dataDir, StorageHealth storage,
        StartupRecovery recovery, Lines.LineRegistry lines, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        // Today's start at today's offset at midnight, not now's: on a DST change day the two differ by an hour.
        var midnight = Scheduling.SendWindow.DayStart(now, time.LocalTimeZone);
        StatusCounts? counts = null;
        DateTimeOffset? next = null;
        MessageEventRow? last = null;
        try
        {
            (counts, next, last) = await query.ReadAsync(midnight, ct, lines.IsActive);
        }
        catch (Exception e) when (StorageHealth.FaultOf(e) is not null)
        {
            // The database cannot be read (damaged while the agent runs, an I/O error): the status still answers, with the
            // storage state first and no counts, so the menu bar and doctor say what is wrong instead of "not running".
            storage.Report(e);
        }
        var pendingRecovery = recovery.Pending; // read once: the answer's two places agree

        return TypedResults.Ok(new AgentStatus(
            typeof(StatusApi).Assembly.GetName().Version?.ToString(3) ?? "0.0.0",
            clock.StartedAt, (long)(now - clock.StartedAt).TotalSeconds, agent.Value.DryRun,
            agent.Value.DryRun ? dataDir.Outbox : null, dataDir.Root,
            await views.AllAsync(ct), counts, next,
            // A full disk is the error the menu bar must show first: it stops everything; then a recovery that has not
            // succeeded yet (nothing is sent until it does).
            !storage.IsHealthy
                ? new LastError(null, storage.State.Code ?? "storage_error", storage.State.Detail, storage.State.Since ?? now)
                : pendingRecovery is { } pending
                ? new LastError(null, RecoveryPending.Code, $"Nothing is sent until the previous run's messages are settled: {pending.Detail}", pending.Since)
                : last is null ? null : new LastError(last.MessageId, last.Code, last.Detail, Time.FromMs(last.At)),
            storage.State,
            pendingRecovery));
    }
}
