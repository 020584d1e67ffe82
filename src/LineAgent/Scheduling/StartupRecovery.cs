using System.Globalization;
using Dapper;
using LineAgent.Channels;
using LineAgent.Delivery;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Scheduling;

/// <summary>
/// Runs once at start, before the dispatcher: settles messages a previous run left in `sending`
/// (never resending one blindly), takes in the replies that reached chat.db meanwhile (a STOP during a restart), and
/// fails schedules that were missed by more than MaxLateness.
/// When the database refuses those writes (a full disk), the agent still starts, so /api/status can say why, and
/// tries again every <see cref="RetryEvery"/>; the dispatcher claims nothing until it has succeeded (<see cref="Done"/>).
/// Before, the exception stopped the host and launchd restarted it every 10 s with no status to read.
/// </summary>
public sealed class StartupRecovery(
    MessageLifecycle lifecycle,
    LineRegistry lines,
    ChannelRouter router,
    ReplyIntake replies,
    Channels.Twilio.TwilioInboundPoller twilioReplies,
    Channels.Messages.MessagesBridge bridge,
    IOptions<AgentOptions> agent,
    IOptions<SchedulingOptions> options,
    StorageHealth storage,
    TimeProvider time,
    ILogger<StartupRecovery> log) : IHostedService
{
    public static readonly TimeSpan RetryEvery = TimeSpan.FromSeconds(10);

    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private Task _retrying = Task.CompletedTask;

    private volatile RecoveryPending? _pending;

    /// <summary>
    /// Messages this start queued again (not sent, or never handed off) that were on their way within MaxLateness: not
    /// failed as missed for an older due time. Kept across the retries of a start that the disk refused.
    /// </summary>
    private readonly HashSet<string> _resumed = [];

    /// <summary>Completes once the previous run's leftovers are settled; nothing is claimed before.</summary>
    public Task Done => _done.Task;

    /// <summary>Why recovery has not succeeded yet (shown by /api/status), or null once it has (or before it first ran).</summary>
    public RecoveryPending? Pending => _pending;

    public async Task StartAsync(CancellationToken ct)
    {
        if (!await TryRecoverAsync(ct))
            _retrying = RetryAsync(_stopping.Token);
    }

    private async Task<bool> TryRecoverAsync(CancellationToken ct)
    {
        try
        {
            if (lifecycle.Store.Db.SearchIndexBehind)
            {
                await lifecycle.OweSearchIndexAsync(ct);
                lifecycle.Store.Db.SearchIndexBehind = false;
            }
            await RecoverSendingAsync(ct);
            // A restore's marks before the replies: a restored copy reads chat.db from its older cursor, and a reply already
            // taken in before the damage would otherwise cancel, as `replied`, a message that had in fact gone out.
            await FailRestoredAsync(ct);
            await TakeInRepliesAsync(ct);
            await FailMissedSchedulesAsync(ct);
            await ReleaseChangedHoldsAsync(ct);
            await FailOrphansAsync(ct);
            _pending = null;
            ReleaseAfterTwilioReplies();
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // Any failure (the database refusing, a channel's reconcile throwing): the agent stays up to say so, and tries again.
            storage.Report(e);
            var now = time.GetUtcNow();
            _pending = new RecoveryPending(_pending?.Since ?? now, e.Message, now + RetryEvery);
            log.LogCritical(e, "Recovery of the previous run failed; nothing is sent until it succeeds (trying again every {Every} s)",
                RetryEvery.TotalSeconds);
            return false;
        }
    }

    private async Task RetryAsync(CancellationToken ct)
    {
        try
        {
            do
                await Task.Delay(RetryEvery, time, ct);
            while (!await TryRecoverAsync(ct));
            log.LogWarning("Recovery of the previous run done after a storage fault; sending resumes");
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// The replies that reached chat.db while the agent was down, before the dispatcher claims anything: a STOP sent
    /// during a restart (or while the Mac slept) must suppress the follow-up that fell due meanwhile, and a reply must
    /// cancel the stop-on-reply messages. The delivery watcher would read them too, but only after the dispatcher had
    /// started. A chat.db that cannot be read is left to the watcher, which says so.
    /// </summary>
    internal async Task TakeInRepliesAsync(CancellationToken ct)
    {
        if (agent.Value.DryRun || !bridge.IsConfigured || bridge.Reader.CheckAccess() != Bridge.ChatDb.ChatDbAccess.Ok)
            return;
        try
        {
            await replies.TakeInAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // Best effort: a chat.db damaged past its first page (SQLite error 11 from the read) must not hold back every
            // channel's sends, email included, nor be reported as the agent's own storage failing.
            log.LogWarning(e, "Recovery: the replies in chat.db could not be read before sending resumes ({Problem}); the delivery watcher tries again",
                e.Message);
        }
    }

    /// <summary>
    /// The replies that reached a Twilio line while the agent was down are read by the inbound poller's first pass, which
    /// starts with the other workers, after this: nothing is claimed until it has ended, or Twilio:Timeout has passed (Twilio
    /// slow or down: sending resumes, and the poller takes them in when Twilio answers). Before, the dispatcher sent a
    /// follow-up that fell due during the restart a moment before the poll read the STOP (black-box probe).
    /// </summary>
    private void ReleaseAfterTwilioReplies()
    {
        if (twilioReplies.FirstPass.IsCompleted)
            _done.TrySetResult();
        else
            _ = WaitForTwilioRepliesAsync();
    }

    private async Task WaitForTwilioRepliesAsync()
    {
        try
        {
            await twilioReplies.FirstPass.WaitAsync(twilioReplies.FirstPassWait, time, _stopping.Token);
        }
        catch (TimeoutException)
        {
            log.LogWarning("Recovery: Twilio's replies were not read within {Seconds} s of the start; sending resumes, and they are taken in once Twilio answers",
                twilioReplies.FirstPassWait.TotalSeconds);
        }
        catch (OperationCanceledException)
        {
            // The agent stops: nothing is to be claimed any more (the dispatcher's wait ends with its own stop).
            return;
        }
        _done.TrySetResult();
    }

    /// <summary>Pending messages of a line that is no longer configured would wait forever: say so instead.</summary>
    internal async Task FailOrphansAsync(CancellationToken ct)
    {
        var failed = await lifecycle.FailOrphansAsync(lines.All.Select(l => l.Id).ToArray(), ct);
        if (failed.Count > 0)
            log.LogWarning("Recovery: {Count} pending messages belong to lines no longer configured; failed them", failed.Count);
    }

    public async Task StopAsync(CancellationToken ct)
    {
        await _stopping.CancelAsync();
        await _retrying.WaitAsync(ct);
    }

    internal async Task RecoverSendingAsync(CancellationToken ct)
    {
        var sending = await lifecycle.Store.QueryAsync(MessageSql.Sending, ct: ct);
        var cutoff = time.GetUtcNow() - options.Value.MaxLateness;
        async Task ReleaseAsync(MessageRow row, string detail)
        {
            // One that was on its way (handed off or claimed) within MaxLateness is not "missed" for its older due time (it
            // waited for pacing, a window or a cap): FailMissedSchedulesAsync leaves it out (review).
            if (await lifecycle.RequeueAsync(row.Id, row.Claim, row.DueAt, null, "released", detail, ct) is not null
                && (row.HandedAt ?? row.ClaimedAt) is { } at && Time.FromMs(at) >= cutoff)
                _resumed.Add(row.Id);
        }
        foreach (var row in sending)
        {
            if (row.HandedAt is null)
            {
                await ReleaseAsync(row, "claimed by a previous run but never handed to a channel");
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
                    await lifecycle.SentAsync(row.Id, row.Claim, s.At, s.ChannelRef, $"found sent by {row.Channel} after a restart", code: "reconciled", ct: ct);
                    break;
                case ReconcileOutcome.NotSent:
                    await ReleaseAsync(row, $"{row.Channel} proves it was not sent before the restart");
                    break;
                case ReconcileOutcome.Unknown u:
                    await lifecycle.FailAsync(row.Id, row.Claim, FailureCodes.Interrupted,
                        $"The agent stopped while sending; whether it went out is unknown ({u.Detail}). Not resent to avoid a duplicate.", null, ct);
                    break;
                case ReconcileOutcome.Pending:
                    await lifecycle.AwaitConfirmationAsync(row.Id, $"{row.Channel} settles it from its own records after the restart", ct);
                    break;
            }
        }
    }

    /// <summary>The first start after `lineagent restore` (see <see cref="DatabaseRestore.RestoredAtKey"/>).</summary>
    internal async Task FailRestoredAsync(CancellationToken ct)
    {
        Dictionary<string, string> marks;
        await using (var c = await lifecycle.Store.Db.OpenAsync(ct))
            marks = (await c.QueryAsync<(string Key, string Value)>(new CommandDefinition(DeliverySql.GetStates,
                new { Keys = new[] { DatabaseRestore.RestoredAtKey, DatabaseRestore.RestoredFromKey, DatabaseRestore.SentKey, DatabaseRestore.WentOnKey, DatabaseRestore.CancelledKey } },
                cancellationToken: ct)))
                .ToDictionary(x => x.Key, x => x.Value);
        if (!marks.TryGetValue(DatabaseRestore.RestoredAtKey, out var at) || !long.TryParse(at, CultureInfo.InvariantCulture, out var restoredAt))
            return;
        var failed = await lifecycle.FailRestoredAsync(restoredAt, marks.GetValueOrDefault(DatabaseRestore.RestoredFromKey) ?? "a backup",
            marks.GetValueOrDefault(DatabaseRestore.SentKey) ?? "[]", marks.GetValueOrDefault(DatabaseRestore.WentOnKey) ?? "[]",
            marks.GetValueOrDefault(DatabaseRestore.CancelledKey) ?? "[]", ct);
        if (failed.Count > 0)
            log.LogWarning("Recovery after a restore: {Count} pending messages were due before the restore, or went on after the backup in the database it replaced, " +
                "and may have been sent; failed them as 'restored' (not resent)", failed.Count);
        else
            log.LogInformation("Recovery after a restore: no pending message was due before the restore; nothing to fail");
    }

    internal async Task FailMissedSchedulesAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var maxLateness = options.Value.MaxLateness;
        var failed = await lifecycle.FailMissedAsync(now - maxLateness, FormatDuration(maxLateness), lines.ActiveLines.Select(l => l.Id).ToArray(),
            _resumed, ct);
        if (failed.Count > 0)
            log.LogWarning("Recovery: {Count} scheduled messages missed their time by more than {MaxLateness}", failed.Count, maxLateness);
    }

    /// <summary>
    /// A line's held messages wait until a time its pacing settings gave (not_before), and a hold is only ever lengthened:
    /// after a restart with other settings (a window widened, a cap raised) they stayed held by the old ones while the line
    /// said it was free and newer messages went first (probe L); within a gap, this run counts the gap from the last send's
    /// stored times, not the previous run's own, and a newer message could be held to an earlier time (review). At each
    /// start every line's held messages are decided again by the dispatcher, in due order; where the settings differ from
    /// the last run's (<see cref="PacingRules.Fingerprint"/>) each gets an event saying so.
    /// </summary>
    internal async Task ReleaseChangedHoldsAsync(CancellationToken ct)
    {
        Dictionary<string, string> stored;
        await using (var c = await lifecycle.Store.Db.OpenAsync(ct))
            stored = (await c.QueryAsync<(string LineId, string Settings)>(new CommandDefinition(
                "SELECT line_id AS LineId, settings AS Settings FROM line_pacing", cancellationToken: ct))).ToDictionary(x => x.LineId, x => x.Settings);
        var all = lines.All.Select(l => (l.Id, Settings: PacingRules.Fingerprint(l, agent.Value)))
            .Select(x => (x.Id, x.Settings, Changed: !stored.TryGetValue(x.Id, out var before) || before != x.Settings)).ToList();
        var released = await lifecycle.ReleaseHoldsAsync(all, ct);
        if (released.Count > 0)
            log.LogInformation("Pacing settings of line(s) {Lines} changed since the last run: {Count} held messages are decided again by the new ones",
                string.Join(", ", released.Select(r => r.LineId).Distinct()), released.Count);
    }

    internal static string FormatDuration(TimeSpan t) =>
        t.TotalHours >= 1 && t.Minutes == 0 && t.Seconds == 0 ? $"{t.TotalHours:0.##} h"
        : t.TotalMinutes >= 1 && t.Seconds == 0 ? $"{t.TotalMinutes:0.##} min"
        : $"{t.TotalSeconds:0.##} s";
}

/// <summary>
/// Start-up recovery that has failed and is tried again: since when, the last failure, and when it is tried next. While
/// it is pending the dispatcher claims nothing, so /api/status says so (here and as its `lastError`).
/// </summary>
public sealed record RecoveryPending(DateTimeOffset Since, string Detail, DateTimeOffset NextAttemptAt)
{
    public const string Code = "recovery_pending";
}
