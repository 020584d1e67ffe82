using System.Collections.Concurrent;
using Dapper;
using LineAgent.Channels;
using LineAgent.Channels.Messages;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Suppressions;
using Microsoft.Data.Sqlite;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace LineAgent.Scheduling;

/// <summary>
/// Sends due messages: one worker per line, so a line hands its messages over in due order, one at a time (several
/// at once only on an unpaced line whose channel takes that, i.e. the dry-run outbox).
/// A worker sleeps until its line's next due time or until a committed change makes something on its line
/// due earlier — there is no fixed poll. Before each send it asks pacing and the channel's circuit; a
/// message that must wait stays `queued` with `notBefore`. Every change goes through <see cref="MessageLifecycle"/>.
/// </summary>
public sealed class Dispatcher(
    MessageLifecycle lifecycle,
    MessageNotifier notifier,
    LineRegistry lines,
    ChannelRouter router,
    ChannelResilience resilience,
    SuppressionList suppressions,
    IPacer pacer,
    StartupRecovery recovery,
    TimeProvider time,
    ILogger<Dispatcher> log) : BackgroundService
{
    /// <summary>Longest sleep before re-checking; a safety net for sleep and wall-clock changes, not the schedule.</summary>
    public static readonly TimeSpan MaxSleep = TimeSpan.FromSeconds(30);

    private readonly string _instance = Guid.NewGuid().ToString("N")[..8];
    private readonly ConcurrentDictionary<string, Wakeup> _wakeups = new();

    private MessageStore Store => lifecycle.Store;

    private Wakeup WakeupOf(string lineId) => _wakeups.GetOrAdd(lineId, _ => new Wakeup(time));

    /// <summary>When the line's worker is asleep: the time it will wake at unless woken. Null while it works.</summary>
    public DateTimeOffset? SleepingUntil(string lineId) => _wakeups.TryGetValue(lineId, out var w) ? w.SleepingUntil : null;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        lines.ActiveChanged += OnActiveChanged;
        notifier.Changed += OnChanged;
        resilience.Retrying += OnRetrying;
        try
        {
            // Nothing is claimed before the previous run's leftovers are settled (at once, unless the disk refused it).
            try { await recovery.Done.WaitAsync(stoppingToken); }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            await Task.WhenAll(lines.All.Select(line => Task.Run(async () =>
            {
                log.LogInformation("Dispatcher {Instance}: line {Line} started", _instance, line.Id);
                await WorkerLoops.RunAsync($"Dispatcher line {line.Id}", ct => StepAsync(line, ct), WakeupOf(line.Id), time, log,
                    TimeSpan.FromSeconds(1), stoppingToken);
                log.LogInformation("Dispatcher {Instance}: line {Line} stopped", _instance, line.Id);
            }, CancellationToken.None)));
        }
        finally
        {
            lines.ActiveChanged -= OnActiveChanged;
            notifier.Changed -= OnChanged;
            resilience.Retrying -= OnRetrying;
        }
    }

    private void OnActiveChanged(string lineId) => WakeupOf(lineId).Wake();

    /// <summary>Only a row that became pending on a line wakes that line, and only if it is due before the worker's planned wake.</summary>
    private void OnChanged(MessageChange change)
    {
        var row = change.Row;
        if (MessageStatus.IsPending(row.Status))
            WakeupOf(row.LineId).WakeBy(Time.FromMs(Math.Max(row.DueAt, row.NotBefore ?? 0)));
    }

    private void OnRetrying(string messageId, int attempt, TimeSpan delay, SendOutcome.Failed failure) =>
        _ = lifecycle.NoteAsync(messageId, MessageStatus.Sending, "retry",
            $"attempt {attempt} in {delay.TotalSeconds:0.#} s after {failure.Code}: {failure.Message}");

    /// <summary>
    /// When the line next has something to do (the earliest of MAX(due time, end of hold) over its pending rows), or
    /// null when that is not before <paramref name="horizonMs"/>. The rows come in due order, so the read stops at the
    /// first whose due time is not before the earliest found or the horizon: usually the first row (a backlog that is
    /// already due and held, by a daily cap or an open circuit, is read up to its first row not held).
    /// </summary>
    internal static async Task<long?> NextDueAtAsync(Microsoft.Data.Sqlite.SqliteConnection c, string lineId, long horizonMs, CancellationToken ct)
    {
        await using var cmd = c.CreateCommand();
        cmd.CommandText = MessageSql.PendingDueTimes;
        cmd.Parameters.AddWithValue("@LineId", lineId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        long? earliest = null;
        while (await reader.ReadAsync(ct))
        {
            var due = reader.GetInt64(0);
            if (due >= Math.Min(earliest ?? long.MaxValue, horizonMs))
                break;
            var at = reader.IsDBNull(1) ? due : Math.Max(due, reader.GetInt64(1));
            if (at < (earliest ?? long.MaxValue))
                earliest = at;
        }
        return earliest < horizonMs ? earliest : null;
    }

    /// <summary>
    /// One decision for a line: send the next due message (or, on an unpaced line whose channel takes several at
    /// once, the next few: each claimed and handed off on disk before it goes, the claims committed together),
    /// hold, or say when to look again.
    /// </summary>
    internal async Task<DateTimeOffset> StepAsync(LineOptions line, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (!lines.IsActive(line.Id))
            return now + MaxSleep;

        // On an unpaced line, as many as the most parallel channel could take (1 where none takes several), so a batch
        // costs one query; a paced line sends one at a time and looks at one.
        var ahead = MessageType.Concrete.Any(t => pacer.Applies(line, t)) ? 1 : router.MostParallelSends;
        List<MessageRow> due;
        await using (var c = await Store.Db.OpenAsync(ct))
        {
            due = await PeekAsync(c, line, now, ahead, ct);
            if (due.Count == 0)
            {
                var next = await NextDueAtAsync(c, line.Id, Time.ToMs(now + MaxSleep), ct);
                var until = next is { } n ? Time.FromMs(n) : now + MaxSleep;
                return until > now + MaxSleep ? now + MaxSleep : until;
            }
        }

        var first = due[0];
        var channel = router.Resolve(line, first.Type);
        // A message of this line on this channel was deferred (the channel busy for a moment): the ones due after it wait
        // with it, also those that came in since (review: the next message went first once the channel was free).
        if (_deferred.TryGetValue((line.Id, channel.Name), out var deferred) && deferred.Until > now)
        {
            await lifecycle.HoldLineAsync(line.Id, deferred.Until, $"held until {Time.Iso(deferred.Until)}: message {deferred.Id} ahead of it waits ({deferred.Why})",
                ct, MessageType.Concrete.Where(t => router.Resolve(line, t).Name == channel.Name).ToList());
            return now;
        }
        if (resilience.OpenUntil(channel.Name, line.Id) is { } open)
        {
            // Only what that channel carries: the line's other types (email while Messages is failing) go on.
            await lifecycle.HoldLineAsync(line.Id, open, $"held until {Time.Iso(open)}: {resilience.WhyHeld(channel.Name, line.Id)}", ct,
                MessageType.Concrete.Where(t => router.Resolve(line, t).Name == channel.Name).ToList());
            return now;
        }

        // Several at once only where no send depends on the one before it: an unpaced line, one channel that takes them.
        var parallel = channel.Capabilities.ParallelSends > 1 && !pacer.Applies(line, first.Type) ? channel.Capabilities.ParallelSends : 1;
        if (parallel > ahead)
        {
            // Pacing applies to some type on this line but not to this message's: look further now.
            await using var c = await Store.Db.OpenAsync(ct);
            due = await PeekAsync(c, line, now, parallel, ct);
            if (due.Count == 0 || due[0].Id != first.Id)
                return now; // changed in between (cancelled, rescheduled): decide again
        }
        var candidates = due.Take(parallel).ToList();
        var suppressed = await suppressions.SuppressedAmongAsync(candidates.Select(m => m.Recipient), ct);
        var sends = new List<Task>(candidates.Count);
        // Sends started together are each checked before the others' hand-offs are written: two to one new address (two
        // leads sharing a phone) would each count as a new conversation (review).
        var opened = new HashSet<(string?, string?)>();
        try
        {
            foreach (var m in candidates)
            {
                if (sends.Count > 0 && (!ReferenceEquals(router.Resolve(line, m.Type), channel) || pacer.Applies(line, m.Type)))
                    break;
                // A reply cancels pending stop-on-reply messages as it is taken in; one being sent then (deferred, or its
                // script retried after Messages was restarted) came back to the queue uncancelled (review).
                if (m.StopOnReply && await Store.ReplySinceAsync(m, ct) is { } replyId)
                {
                    await lifecycle.CancelRepliedAsync(m, replyId, ct);
                    continue;
                }
                var decision = await pacer.CheckAsync(line, m, now, ct);
                if (decision.Hold is { } hold)
                {
                    var detail = $"held until {Time.Iso(hold.NotBefore)}: {hold.Reason}";
                    if (hold.LineWide)
                    {
                        await lifecycle.HoldLineAsync(line.Id, hold.NotBefore, detail, ct);
                        break;
                    }
                    await lifecycle.HoldAsync(m.Id, hold.NotBefore, detail, ct);
                    continue;
                }
                var refused = suppressed.Contains(m.Recipient)
                    ? new SendOutcome.Failed(FailureCodes.Suppressed, $"{m.Recipient} opted out (suppression list); nothing was sent.", ProvenNotSent: true)
                    : decision.Never is { } never ? new SendOutcome.Failed(FailureCodes.WindowNeverOpen, never, ProvenNotSent: true) : null;
                var newConversation = decision.NewConversation && opened.Add(PacingRules.ConversationKey(m.Type, m.RecipientPhone, m.RecipientEmail));
                sends.Add(SendAsync(line, m, channel, newConversation, refused, ct));
            }
        }
        finally
        {
            // Sends already started are waited for even when a later decision throws (a stop, a storage error): their
            // outcomes must be written before the agent stops, and the line must not start the next ones meanwhile.
            await Task.WhenAll(sends);
        }
        return now;
    }

    /// <summary>The line's next <paramref name="limit"/> due messages, by due time then acceptance order.</summary>
    private static async Task<List<MessageRow>> PeekAsync(SqliteConnection c, LineOptions line, DateTimeOffset now, int limit, CancellationToken ct) =>
        (await c.QueryAsync<MessageRow>(new CommandDefinition(
            MessageSql.PeekDue, new { LineId = line.Id, Now = Time.ToMs(now), Limit = limit }, cancellationToken: ct))).AsList();

    /// <summary>
    /// One send; <paramref name="refused"/>: it is failed without a hand-off (the recipient is on the suppression list, asked
    /// for the step's batch at once; or its recipient's hours never meet the line's window).
    /// </summary>
    internal async Task SendAsync(LineOptions line, MessageRow due, IMessageChannel channel, bool newConversation, SendOutcome.Failed? refused, CancellationToken ct)
    {
        var claim = $"{_instance}-{Guid.NewGuid():N}";
        if (refused is not null)
        {
            if (await lifecycle.ClaimAsync(due.Id, claim, $"claimed to record why it is not sent ({refused.Code})", ct) is { } held)
                await RecordOutcomeAsync(held, claim, channel, refused,
                    deferrable: false); // the line waits for this one: nothing would come to share its commit
            return;
        }
        var claimed = await lifecycle.ClaimAndHandOffAsync(due.Id, claim, channel.Name, channel.Capabilities.IsDryRun, newConversation, ct,
            marksStart: channel.Capabilities.MarksStart);
        if (claimed is null)
            return; // cancelled, rescheduled or taken by another dispatcher in the meantime

        // From the hand-off on, this send is finished even if the agent is stopping: not the stopping token.
        var outageBefore = resilience.InOutage(channel.Name);
        var outcome = await SendThroughPipelineAsync(channel, new SendRequest(claimed, line, claim,
            (baseline, token) => lifecycle.KeepScriptBaselineAsync(claimed.Id, claim, baseline, token), token => WhyNotNowAsync(claimed, token)));
        var returned = time.GetUtcNow();
        // A settings fault met again (a refused login), or an outage that was already under way: this one waits with the rest
        // instead of failing (ChannelResilience.AfterAttempt).
        if (resilience.AfterAttempt(channel, line.Id, outcome, outageBefore) is { } wait)
            outcome = new SendOutcome.Deferred(outcome is SendOutcome.Failed { Outage: true } down
                ? $"{resilience.WhyHeld(channel.Name, line.Id)}, the next try after its break: {down.Code}: {down.Message}"
                : resilience.WhyHeld(channel.Name, line.Id), wait);
        // The line's next gap counts from here, for a send that keeps its hand-off: not one that goes back to the queue
        // (deferred, circuit open), whose hand-off is undone (review: the wait was added to the send before it).
        if (outcome is not (SendOutcome.Deferred or SendOutcome.Failed { Code: CircuitOpenCode }))
            pacer.SendEnded(line.Id, returned);
        // The outcome is written behind the line's next claim rather than waited for, as a deferrable unit: it shares the
        // commit of the next claim (or request) that reaches the writer within DbWriter.DeferFor, so a burst pays one synced
        // commit per batch, not two. The writer keeps the order, and a restart before it is on disk reconciles the row with
        // the channel (never a blind resend).
        Track(RecordThenTellAsync(claimed, claim, channel, outcome));
    }

    /// <summary>What the dispatcher checked before the hand-off, asked again by a channel before it sends (<see cref="SendRequest.WhyNotNow"/>).</summary>
    private async Task<string?> WhyNotNowAsync(MessageRow m, CancellationToken ct)
    {
        if ((await suppressions.SuppressedAmongAsync([m.Recipient], ct)).Count > 0)
            return $"{m.Recipient} opted out (suppression list)";
        return m.StopOnReply && await Store.ReplySinceAsync(m, ct) is { } replyId ? $"{m.Recipient} replied ({replyId}) and the message stops on a reply" : null;
    }

    /// <summary>
    /// The outcome, then the channel is told it is on disk (Messages: its chat.db rows are then the database's to match).
    /// Not told when it was not written (the claim was lost, the writer gave up): its rows stay held until the channel's
    /// own limit (review: told in a finally, a later send's row could go to an earlier send of the same text).
    /// </summary>
    private async Task RecordThenTellAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome outcome)
    {
        if (await RecordOutcomeAsync(row, claim, channel, outcome, deferrable: true))
            channel.OutcomeRecorded(row.Id);
    }

    private readonly ConcurrentDictionary<Task, bool> _outcomes = new();

    private void Track(Task task)
    {
        _outcomes[task] = true;
        _ = task.ContinueWith(t =>
        {
            _outcomes.TryRemove(t, out _);
            if (t.Exception is { } e)
                log.LogCritical(e.GetBaseException(), "The outcome of a send was not recorded; the next start reconciles the message with its channel");
        }, TaskScheduler.Default);
    }

    /// <summary>On shutdown: every outcome of a send that went out is written before the agent stops.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // A send waiting to be retried goes back to the queue now (RetryBackoff) instead of holding the stop for its backoff.
        _stopping = true;
        foreach (var waiting in _backoffs.Keys)
            waiting.Stop();
        await base.StopAsync(cancellationToken); // ends when every line's sends returned, or when Agent:ShutdownTimeout ran out
        // Agent:ShutdownTimeout ran out with sends in flight: they are cut (probe N: a stop waited for an SMTP server slow to
        // answer the data, past the timeout and launchd's ExitTimeOut, and then could not write the outcome). What each one is
        // then (sent, not sent, or interrupted: it may have gone) is written before the agent stops, within OutcomesAfterTimeout.
        // (Registered now: at once when it has run out already. A registration made before base.StopAsync was undone unrun, as
        // the timeout's own callbacks ran this method on to its end first.)
        using var cut = new CancellationTokenSource();
        await using var onTimeout = cancellationToken.Register(() =>
        {
            _cutting = true;
            foreach (var send in _backoffs.Keys)
                send.Cut();
            cut.CancelAfter(OutcomesAfterTimeout);
        });
        await using var giveUp = cut.Token.Register(() => _giveUpOutcomes.Cancel());
        try
        {
            if (ExecuteTask is { } passes)
                await passes.WaitAsync(cut.Token); // the passes end once their sends returned and handed their outcomes on
        }
        catch (Exception)
        {
            // cut short: the outcomes handed on so far are still waited for below, within the same time
        }
        try
        {
            await Task.WhenAll(_outcomes.Keys).WaitAsync(cut.Token);
        }
        catch (Exception)
        {
            // an outcome that gave up is already logged (Track); the others were waited for
        }
    }

    private volatile bool _cutting;

    /// <summary>
    /// How long the outcomes of the sends cut at the shutdown timeout are waited for (a channel answers a cancellation at
    /// once; the writer commits them): within the 5 s that launchd's ExitTimeOut (30 s) leaves beyond the default 25.
    /// </summary>
    internal static readonly TimeSpan OutcomesAfterTimeout = TimeSpan.FromSeconds(3); // + the channels' disposal (SMTP: 1 s): 29 s of launchd's 30

    private volatile bool _stopping;
    private readonly ConcurrentDictionary<RetryBackoff, byte> _backoffs = new();

    private async Task<SendOutcome> SendThroughPipelineAsync(IMessageChannel channel, SendRequest request)
    {
        var backoff = new RetryBackoff(() => _stopping);
        _backoffs[backoff] = 0;
        if (_cutting)
        {
            // Handed off as the stop cut the others (a hand-off written late): it is not started (review: its cancelled
            // pipeline ended as `interrupted`, maybe sent, for a send never made).
            _backoffs.TryRemove(backoff, out _);
            return new SendOutcome.Deferred("the agent stopped (Agent:ShutdownTimeout ran out) before the send started; nothing was sent, it goes when the agent runs again",
                TimeSpan.Zero);
        }
        var context = ResilienceContextPool.Shared.Get(backoff.Token);
        context.Properties.Set(ChannelResilience.MessageId, request.Message.Id);
        context.Properties.Set(ChannelResilience.Backoff, backoff);
        try
        {
            var outcome = await resilience.For(channel).ExecuteAsync(static async (ctx, state) =>
            {
                if (ctx.Properties.TryGetValue(ChannelResilience.Backoff, out var wait) && !wait.TryAttempt())
                    return new SendOutcome.Deferred("the agent is stopping; the retry was not made, nothing more was sent", TimeSpan.Zero);
                // A retry (after a backoff of seconds: Twilio's 429, an SMTP server down) asks again what the dispatcher
                // checked before the hand-off: an opt-out or a reply that came during the backoff was sent anyway (review).
                if (ctx.Properties.TryGetValue(ChannelResilience.LastFailure, out var before)
                    && await ChannelGate.WhyNotNowAsync(state.request, ctx.CancellationToken) is { } reason)
                    return new SendOutcome.Deferred($"{reason}; the retry after {before.Code} was not made, nothing more was sent", TimeSpan.FromSeconds(1));
                return await state.channel.SendAsync(state.request, ctx.CancellationToken);
            }, context, (channel, request));
            return backoff.WasCut ? Cut(channel, outcome) : outcome;
        }
        catch (BrokenCircuitException e)
        {
            // The circuit opened before this attempt: nothing was handed over. When this message's own failed attempts
            // opened it (one recipient's server answering 4xx), it ends with its last failure: requeued, it would be the
            // half-open trial every time the circuit closed, and fail and reopen it, holding the channel for ever (a probe).
            // Review: with two lines, a send in its retry backoff when the other line's attempt opened the circuit for an outage
            // also ended failed; only the send whose attempt opened it does (the sender learns why), the others wait.
            if (context.Properties.TryGetValue(ChannelResilience.LastFailure, out var last)
                && (!last.Outage || context.Properties.TryGetValue(ChannelResilience.OpenedTheCircuit, out _)))
                return last;
            return new SendOutcome.Failed(CircuitOpenCode, e.Message, ProvenNotSent: true);
        }
        catch (OperationCanceledException) when (backoff.WasStopped)
        {
            // The stop ended the wait before a retry: every attempt so far proved nothing was sent. It waits in the queue.
            var after = context.Properties.TryGetValue(ChannelResilience.LastFailure, out var last) ? $" after {last.Code}" : "";
            return new SendOutcome.Deferred($"the agent stopped while the send waited to be retried{after}; nothing was sent, it goes when the agent runs again",
                TimeSpan.Zero);
        }
        catch (OperationCanceledException) when (backoff.WasCut)
        {
            return Cut(channel, null);
        }
        catch (TimeoutRejectedException)
        {
            // A channel that confirms later (Messages: chat.db) settles it itself; for the others the outcome is unknown.
            return channel.Capabilities.ConfirmsLater
                ? new SendOutcome.Accepted(null)
                : new SendOutcome.Failed(FailureCodes.Unconfirmed, $"{channel.Name} did not answer within the attempt timeout; it may have been sent, so it is not sent again.", ProvenNotSent: false);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Channel {Channel} threw for {Id}", channel.Name, request.Message.Id);
            return new SendOutcome.Failed(FailureCodes.ChannelError,
                $"{channel.Name} failed unexpectedly: {ex.Message} It may have been sent, so it is not sent again.", ProvenNotSent: false);
        }
        finally
        {
            _backoffs.TryRemove(backoff, out _);
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private const string CircuitOpenCode = "circuit_open";

    /// <summary>
    /// What a send cut by the shutdown timeout is. What the channel answered is kept: sent, accepted, deferred, and a failure
    /// it gave (a refusal may have come just before the cut). A failure that proves nothing was sent and would have been
    /// retried (the channel's own words for the cut before the data, "did not answer within the attempt's time", are one)
    /// goes back to the queue: after a middle attempt the retry's stopped wait does that already (EmailChannelTests' tarpit
    /// case: retry, then deferred); a last attempt has no wait, and comes here.
    /// The channel's "did not finish within the attempt's time" (`unconfirmed`) is the cut's: `interrupted`, maybe sent, not
    /// sent again, as the next start would say. Nothing from the channel (the cancellation came through it): a channel that
    /// confirms later (Messages: chat.db) settles it itself, as after an attempt's timeout; for the others it is `interrupted`.
    /// </summary>
    private static SendOutcome Cut(IMessageChannel channel, SendOutcome? outcome) => outcome switch
    {
        SendOutcome.Failed { MayRetry: true } failed => new SendOutcome.Deferred(
            $"the agent stopped during the send (Agent:ShutdownTimeout ran out) before it reached {channel.Name} ({failed.Code}); nothing was sent, it goes when the agent runs again",
            TimeSpan.Zero),
        null when channel.Capabilities.ConfirmsLater => new SendOutcome.Accepted(null),
        null or SendOutcome.Failed { Code: FailureCodes.Unconfirmed } => new SendOutcome.Failed(FailureCodes.Interrupted,
            $"The agent stopped while sending (Agent:ShutdownTimeout ran out before {channel.Name} answered); whether it went out is unknown, so it is not sent again.",
            ProvenNotSent: false),
        _ => outcome,
    };

    /// <summary>
    /// Writes the outcome, retrying while the database refuses (busy, I/O): it is compare-and-set, so a
    /// repeat is harmless, and a send that went out must not end up looking interrupted.
    /// </summary>
    /// <remarks>
    /// It does not give up while the agent runs (a full disk can take minutes to clear): a row left `sending` becomes
    /// `interrupted` at the next start when its channel cannot tell, which is untrue of a send that went out. Only when
    /// the host's shutdown timeout runs out does it stop trying; the restart then reconciles the row.
    /// </remarks>
    private async Task<bool> RecordOutcomeAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome outcome, bool deferrable)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var written = await WriteOutcomeAsync(row, claim, channel, outcome, deferrable);
                if (attempt > 1)
                    log.LogWarning("Recorded the outcome of {Id} at attempt {Attempt}", row.Id, attempt);
                return written;
            }
            catch (Exception e) when (attempt < 8 || StorageHealth.FaultOf(e) is not null || e is SqliteException { SqliteErrorCode: 5 or 6 })
            {
                // Without limit only while the database refuses (full, read-only, I/O, busy, locked: these clear); any other error
                // gives up after 8, as before.
                var wait = TimeSpan.FromMilliseconds(Math.Min(250 * Math.Pow(2, Math.Min(attempt, 10) - 1), MaxOutcomeRetryWait.TotalMilliseconds));
                log.LogError(e, "Recording the outcome of {Id} ({Outcome}) failed (attempt {Attempt}); again in {Wait}", row.Id, outcome, attempt, wait);
                try
                {
                    await Task.Delay(wait, _giveUpOutcomes.Token); // real time: this waits out the database, not a schedule
                }
                catch (OperationCanceledException)
                {
                    log.LogCritical("The outcome of {Id} ({Outcome}) was not recorded before the agent stopped; the next start reconciles it with {Channel}",
                        row.Id, outcome, channel.Name);
                    return false;
                }
            }
        }
    }

    private static readonly TimeSpan MaxOutcomeRetryWait = TimeSpan.FromSeconds(30);

    /// <summary>Cancelled when the host's shutdown timeout runs out: outcomes still unwritten are left to the next start.</summary>
    private readonly CancellationTokenSource _giveUpOutcomes = new();

    /// <summary>
    /// A deferred send waits, and so does every due message of its line that the same channel carries: held alone, the
    /// deferred one let the line's next message go first (review: Messages busy with another line's script for a moment,
    /// then free for the next message, against the due order).
    /// </summary>
    private async Task<MessageRow?> DeferAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome.Deferred d, bool deferrable)
    {
        var until = time.GetUtcNow() + d.RetryAfter;
        var requeued = await lifecycle.RequeueAsync(row.Id, claim, row.DueAt, until, "deferred",
            $"not sent, waits {d.RetryAfter.TotalSeconds:0} s: {d.Reason}", deferrable: deferrable);
        if (requeued is not null)
            _deferred.AddOrUpdate((row.LineId, channel.Name), (until, row.Id, d.Reason),
                (_, before) => before.Until >= until ? before : (until, row.Id, d.Reason));
        return requeued;
    }

    /// <summary>Per line and channel: until when a deferred send waits, which, and why (in memory: a start decides holds again).</summary>
    private readonly ConcurrentDictionary<(string Line, string Channel), (DateTimeOffset Until, string Id, string Why)> _deferred = new();

    /// <returns>False when the claim is no longer held (nothing was written).</returns>
    private async Task<bool> WriteOutcomeAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome outcome, bool deferrable)
    {
        var result = outcome switch
        {
            SendOutcome.Sent s => await lifecycle.SentAsync(row.Id, claim, s.At, s.ChannelRef, $"sent by {channel.Name}", deferrable: deferrable),
            SendOutcome.Accepted a => await lifecycle.ChannelAcceptedAsync(row.Id, claim, a.ChannelRef, a.Baseline,
                a.Detail is null ? $"accepted by {channel.Name}; awaiting confirmation" : $"{a.Detail}; awaiting confirmation",
                deferrable: deferrable),
            SendOutcome.Deferred d => await DeferAsync(row, claim, channel, d, deferrable),
            SendOutcome.Failed { Code: CircuitOpenCode } f => await lifecycle.RequeueAsync(row.Id, claim, row.DueAt,
                resilience.OpenUntil(channel.Name) ?? time.GetUtcNow() + TimeSpan.FromSeconds(30), "paced",
                $"{channel.Name} is failing (circuit open); waits: {f.Message}", deferrable: deferrable),
            SendOutcome.Failed f => await lifecycle.FailAsync(row.Id, claim, f.Code, f.Message, f.ChannelCode, deferrable: deferrable),
            _ => throw new InvalidOperationException($"Unknown outcome {outcome}"),
        };
        if (result is null)
            log.LogWarning("Outcome of {Id} not recorded: the claim {Claim} is no longer held", row.Id, claim);
        return result is not null;
    }
}
