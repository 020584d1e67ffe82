using Dapper;
using LineAgent.Channels;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Scheduling;

/// <summary>
/// Runs once at start, before the dispatcher: settles messages a previous run left in `sending`
/// (never resending one blindly) and fails schedules that were missed by more than MaxLateness.
/// </summary>
public sealed class StartupRecovery(
    MessageStore store,
    LineRegistry lines,
    ChannelRouter router,
    IOptions<SchedulingOptions> options,
    TimeProvider time,
    ILogger<StartupRecovery> log) : IHostedService
{
    public async Task StartAsync(CancellationToken ct)
    {
        await RecoverSendingAsync(ct);
        await FailMissedSchedulesAsync(ct);
        await FailOrphansAsync(ct);
    }

    /// <summary>Pending messages of a line that is no longer configured would wait forever: say so instead.</summary>
    internal async Task FailOrphansAsync(CancellationToken ct)
    {
        var failed = await store.TransitionManyAsync("""
            UPDATE messages
            SET status = 'failed', error_code = 'line_not_found', updated_at = @Now,
                error_message = 'Line ' || line_id || ' is no longer configured on this agent; the message was not sent.'
            WHERE status IN ('scheduled', 'queued') AND line_id NOT IN @Lines
            RETURNING *
            """, new { Now = Time.ToMs(time.GetUtcNow()), Lines = lines.All.Select(l => l.Id).ToArray() }, ct);
        if (failed.Count > 0)
            log.LogWarning("Recovery: {Count} pending messages belong to lines no longer configured; failed them", failed.Count);
    }

    public Task StopAsync(CancellationToken ct) => Task.CompletedTask;

    internal async Task RecoverSendingAsync(CancellationToken ct)
    {
        List<MessageRow> sending;
        await using (var c = await store.Db.OpenAsync(ct))
            sending = (await c.QueryAsync<MessageRow>(new CommandDefinition(MessageSql.Sending, cancellationToken: ct))).AsList();

        foreach (var row in sending)
        {
            var now = Time.ToMs(time.GetUtcNow());
            if (row.HandedAt is null)
            {
                await store.TransitionAsync(MessageSql.Requeue, new { row.Id, row.Claim, DueAt = row.DueAt, NotBefore = (long?)null, Now = now },
                    code: "released", detail: "claimed by a previous run but never handed to a channel", ct: ct);
                continue;
            }

            var line = lines.Find(row.LineId) ?? LinesOptions.DefaultLine();
            var channel = router.ByName(row.Channel);
            ReconcileOutcome outcome = channel is null
                ? new ReconcileOutcome.Unknown($"channel '{row.Channel}' is not available in this run")
                : await channel.ReconcileAsync(new SendRequest(row, line, row.Claim ?? ""), ct);
            log.LogInformation("Recovery: {Id} was sending through {Channel}: {Outcome}", row.Id, row.Channel, outcome);
            switch (outcome)
            {
                case ReconcileOutcome.Sent s:
                    await store.TransitionAsync(MessageSql.CompleteSent,
                        new { row.Id, row.Claim, SentAt = Time.ToMs(s.At), s.ChannelRef, Now = now },
                        code: "reconciled", detail: $"found sent by {row.Channel} after a restart", ct: ct);
                    break;
                case ReconcileOutcome.NotSent:
                    await store.TransitionAsync(MessageSql.Requeue, new { row.Id, row.Claim, DueAt = row.DueAt, NotBefore = (long?)null, Now = now },
                        code: "released", detail: $"{row.Channel} proves it was not sent before the restart", ct: ct);
                    break;
                case ReconcileOutcome.Unknown u:
                    await store.TransitionAsync(MessageSql.CompleteFailed,
                        new { row.Id, row.Claim, Code = "interrupted", ChannelCode = (long?)null, Message = $"The agent stopped while sending; whether it went out is unknown ({u.Detail}). Not resent to avoid a duplicate.", Now = now },
                        ct: ct);
                    break;
                case ReconcileOutcome.Pending:
                    await store.TransitionAsync(MessageSql.AwaitConfirmation, new { row.Id, Now = now },
                        code: "awaiting", detail: $"{row.Channel} settles it from its own records after the restart", ct: ct);
                    break;
            }
        }
    }

    internal async Task FailMissedSchedulesAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var maxLateness = options.Value.MaxLateness;
        var failed = await store.TransitionManyAsync(MessageSql.FailMissed, new
        {
            Cutoff = Time.ToMs(now - maxLateness),
            Now = Time.ToMs(now),
            MaxLatenessText = FormatDuration(maxLateness),
        }, ct);
        if (failed.Count > 0)
            log.LogWarning("Recovery: {Count} scheduled messages missed their time by more than {MaxLateness}", failed.Count, maxLateness);
    }

    internal static string FormatDuration(TimeSpan t) =>
        t.TotalHours >= 1 && t.Minutes == 0 && t.Seconds == 0 ? $"{t.TotalHours:0.##} h"
        : t.TotalMinutes >= 1 && t.Seconds == 0 ? $"{t.TotalMinutes:0.##} min"
        : $"{t.TotalSeconds:0.##} s";
}
