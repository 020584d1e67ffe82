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
/// Sends due messages: one worker per line, so a line sends one message at a time in due order.
/// A worker sleeps until its line's next due time or a signal — there is no fixed poll. Before each
/// send it asks pacing and the channel's circuit; a message that must wait stays `queued` with `notBefore`.
/// </summary>
public sealed class Dispatcher(
    MessageStore store,
    LineRegistry lines,
    ChannelRouter router,
    ChannelResilience resilience,
    DispatchSignal signal,
    SuppressionList suppressions,
    IPacer pacer,
    TimeProvider time,
    ILogger<Dispatcher> log) : BackgroundService
{
    /// <summary>Longest sleep before re-checking; a safety net for sleep and wall-clock changes, not the schedule.</summary>
    public static readonly TimeSpan MaxSleep = TimeSpan.FromSeconds(30);

    private readonly string _instance = Guid.NewGuid().ToString("N")[..8];
    private readonly ConcurrentDictionary<string, DateTimeOffset> _sleepingUntil = new();

    /// <summary>When the line's worker is asleep: the time it will wake at unless signalled. Null while it works.</summary>
    public DateTimeOffset? SleepingUntil(string lineId) => _sleepingUntil.TryGetValue(lineId, out var t) ? t : null;

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        lines.ActiveChanged += signal.Notify;
        resilience.Retrying += OnRetrying;
        var workers = lines.All.Select(line => Task.Run(() => RunLineAsync(line, stoppingToken), CancellationToken.None));
        return Task.WhenAll(workers);
    }

    private void OnRetrying(string messageId, int attempt, TimeSpan delay, SendOutcome.Failed failure) =>
        _ = store.AddEventAsync(messageId, MessageStatus.Sending, "retry",
            $"attempt {attempt} in {delay.TotalSeconds:0.#} s after {failure.Code}: {failure.Message}");

    private async Task RunLineAsync(LineOptions line, CancellationToken ct)
    {
        log.LogInformation("Dispatcher {Instance}: line {Line} started", _instance, line.Id);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await StepAsync(line, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                log.LogError(ex, "Dispatcher: line {Line} iteration failed; retrying shortly", line.Id);
                try { await Task.Delay(TimeSpan.FromSeconds(1), time, ct); }
                catch (OperationCanceledException) { break; }
            }
        }
        log.LogInformation("Dispatcher {Instance}: line {Line} stopped", _instance, line.Id);
    }

    /// <summary>One decision for a line: send the next due message, hold, or sleep until something changes.</summary>
    internal async Task StepAsync(LineOptions line, CancellationToken ct)
    {
        var wake = signal.Next(line.Id);
        var now = time.GetUtcNow();
        if (!lines.IsActive(line.Id))
        {
            await SleepAsync(line.Id, wake, now + MaxSleep, ct);
            return;
        }

        MessageRow? due;
        await using (var c = await store.Db.OpenAsync(ct))
        {
            due = await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(
                MessageSql.PeekDue, new { LineId = line.Id, Now = Time.ToMs(now) }, cancellationToken: ct));
            if (due is null)
            {
                var next = await c.ExecuteScalarAsync<long?>(new CommandDefinition(MessageSql.NextDueAt, new { LineId = line.Id }, cancellationToken: ct));
                await c.CloseAsync();
                await SleepAsync(line.Id, wake, next is { } n ? Time.FromMs(n) : now + MaxSleep, ct);
                return;
            }
        }

        var channel = router.Resolve(line, due.Type);
        if (resilience.OpenUntil(channel.Name) is { } open)
        {
            await HoldLineAsync(line, new PacingHold(open, $"{channel.Name} is failing (circuit open)"), now, ct);
            return;
        }

        var decision = await pacer.CheckAsync(line, due, now, ct);
        if (decision.Hold is { } hold)
        {
            if (hold.LineWide)
                await HoldLineAsync(line, hold, now, ct);
            else
                await store.TransitionAsync(MessageSql.Hold, new { due.Id, NotBefore = Time.ToMs(hold.NotBefore), Now = Time.ToMs(now) },
                    code: "paced", detail: $"held until {hold.NotBefore:O}: {hold.Reason}", ct: ct);
            return;
        }

        await SendAsync(line, due, channel, decision.NewConversation, now, ct);
    }

    /// <summary>Everything due on the line waits as `queued` until the hold ends; each message is told once.</summary>
    private async Task HoldLineAsync(LineOptions line, PacingHold hold, DateTimeOffset now, CancellationToken ct)
    {
        var p = new { LineId = line.Id, NotBefore = Time.ToMs(hold.NotBefore), Now = Time.ToMs(now) };
        List<MessageRow> announced;
        await using (var c = await store.Db.OpenAsync(ct))
        await using (var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct))
        {
            announced = (await c.QueryAsync<MessageRow>(new CommandDefinition(MessageSql.NewlyHeld, p, tx, cancellationToken: ct))).AsList();
            await c.ExecuteAsync(new CommandDefinition(MessageSql.HoldLine, p, tx, cancellationToken: ct));
            foreach (var m in announced)
                await c.ExecuteAsync(new CommandDefinition(MessageSql.InsertEvent, new
                {
                    MessageId = m.Id, At = p.Now, Status = MessageStatus.Queued, Code = "paced",
                    Detail = $"held until {hold.NotBefore:O}: {hold.Reason}",
                }, tx, cancellationToken: ct));
            await tx.CommitAsync(ct);
        }
        if (announced.Count > 0)
            foreach (var m in (await Task.WhenAll(announced.Select(m => store.GetAsync(m.Id, ct)))).OfType<MessageRow>())
                store.Publish(m);
    }

    /// <summary>Sleeps until <paramref name="until"/> (at most <see cref="MaxSleep"/>) or a signal, whichever is first.</summary>
    private async Task SleepAsync(string lineId, Task wake, DateTimeOffset until, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (until > now + MaxSleep)
            until = now + MaxSleep;
        if (until <= now)
            return;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var timer = Task.Delay(until - now, time, cts.Token);
        _sleepingUntil[lineId] = until;
        try
        {
            await Task.WhenAny(wake, timer);
        }
        finally
        {
            _sleepingUntil.TryRemove(lineId, out _);
            cts.Cancel();
        }
        ct.ThrowIfCancellationRequested();
    }

    internal async Task SendAsync(LineOptions line, MessageRow due, IMessageChannel channel, bool newConversation, DateTimeOffset now, CancellationToken ct)
    {
        var claim = $"{_instance}-{Guid.NewGuid():N}";
        var claimed = await store.TransitionAsync(MessageSql.Claim,
            new { due.Id, Claim = claim, Now = Time.ToMs(now) }, detail: $"handing to {channel.Name}", ct: ct);
        if (claimed is null)
            return; // cancelled, rescheduled or taken by another dispatcher in the meantime

        // From the claim on, this send is finished even if the agent is stopping: nothing is left half-claimed.
        ct = CancellationToken.None;
        try
        {
            if (await suppressions.IsSuppressedAsync(claimed.Recipient, ct))
            {
                await RecordOutcomeAsync(claimed, claim, channel, new SendOutcome.Failed("suppressed",
                    $"{claimed.Recipient} opted out (suppression list); nothing was sent.", ProvenNotSent: true));
                return;
            }
            await using var c = await store.Db.OpenAsync(ct);
            var marked = await c.ExecuteAsync(new CommandDefinition(MessageSql.MarkHanded, new
            {
                claimed.Id, Claim = claim, Now = Time.ToMs(time.GetUtcNow()), Channel = channel.Name,
                DryRun = channel is DryRunOutboxChannel, NewConversation = newConversation,
            }, cancellationToken: ct));
            if (marked == 0)
                return;
        }
        catch (Exception e)
        {
            // Nothing was handed over yet: give the message back rather than leave it claimed.
            log.LogError(e, "Before handing {Id} to {Channel}; releasing it", claimed.Id, channel.Name);
            await store.TransitionAsync(MessageSql.Requeue, new
            {
                claimed.Id, Claim = claim, claimed.DueAt, NotBefore = Time.ToMs(time.GetUtcNow() + TimeSpan.FromSeconds(5)), Now = Time.ToMs(time.GetUtcNow()),
            }, code: "released", detail: $"released after an error before the hand-off: {e.Message}");
            return;
        }

        // Not the stopping token: a send in flight is finished, not abandoned, on shutdown.
        var outcome = await SendThroughPipelineAsync(channel, new SendRequest(claimed, line, claim));
        await RecordOutcomeAsync(claimed, claim, channel, outcome);
    }

    private async Task<SendOutcome> SendThroughPipelineAsync(IMessageChannel channel, SendRequest request)
    {
        var context = ResilienceContextPool.Shared.Get(CancellationToken.None);
        context.Properties.Set(ChannelResilience.MessageId, request.Message.Id);
        try
        {
            return await resilience.For(channel).ExecuteAsync(
                static async (ctx, state) => await state.channel.SendAsync(state.request, ctx.CancellationToken), context, (channel, request));
        }
        catch (BrokenCircuitException e)
        {
            // The circuit opened before this attempt: nothing was handed over.
            return new SendOutcome.Failed(CircuitOpenCode, e.Message, ProvenNotSent: true);
        }
        catch (TimeoutRejectedException)
        {
            // Messages confirms through chat.db; for the others the outcome is unknown.
            return channel.Name == MessagesChannel.ChannelName
                ? new SendOutcome.Accepted(null)
                : new SendOutcome.Failed("unconfirmed", $"{channel.Name} did not answer within the attempt timeout; it may have been sent, so it is not sent again.", ProvenNotSent: false);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Channel {Channel} threw for {Id}", channel.Name, request.Message.Id);
            return new SendOutcome.Failed("channel_error", $"{channel.Name}: {ex.Message}", ProvenNotSent: false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private const string CircuitOpenCode = "circuit_open";

    /// <summary>
    /// Writes the outcome, retrying while the database refuses (busy, I/O): it is compare-and-set, so a
    /// repeat is harmless, and a send that went out must not end up looking interrupted.
    /// </summary>
    private async Task RecordOutcomeAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome outcome)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await WriteOutcomeAsync(row, claim, channel, outcome);
                return;
            }
            catch (Exception e) when (attempt < 8)
            {
                var wait = TimeSpan.FromMilliseconds(250 * Math.Pow(2, attempt - 1));
                log.LogError(e, "Recording the outcome of {Id} failed (attempt {Attempt}); again in {Wait}", row.Id, attempt, wait);
                await Task.Delay(wait, CancellationToken.None); // real time: this waits out the database, not a schedule
            }
        }
    }

    private async Task WriteOutcomeAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome outcome)
    {
        var now = Time.ToMs(time.GetUtcNow());
        var result = outcome switch
        {
            SendOutcome.Sent s => await store.TransitionAsync(MessageSql.CompleteSent,
                new { row.Id, Claim = claim, SentAt = Time.ToMs(s.At), s.ChannelRef, Now = now }, detail: $"sent by {channel.Name}"),
            SendOutcome.Accepted a => await store.TransitionAsync(MessageSql.CompleteAccepted,
                new { row.Id, Claim = claim, a.ChannelRef, a.Baseline, Now = now }, code: "accepted", detail: $"accepted by {channel.Name}; awaiting confirmation"),
            SendOutcome.Failed { Code: CircuitOpenCode } f => await store.TransitionAsync(MessageSql.Requeue, new
            {
                row.Id, Claim = claim, row.DueAt, Now = now,
                NotBefore = Time.ToMs(resilience.OpenUntil(channel.Name) ?? time.GetUtcNow() + TimeSpan.FromSeconds(30)),
            }, code: "paced", detail: $"{channel.Name} is failing (circuit open); waits: {f.Message}"),
            SendOutcome.Failed f => await store.TransitionAsync(MessageSql.CompleteFailed,
                new { row.Id, Claim = claim, f.Code, f.Message, f.ChannelCode, Now = now }),
            _ => throw new InvalidOperationException($"Unknown outcome {outcome}"),
        };
        if (result is null)
            log.LogWarning("Outcome of {Id} not recorded: the claim {Claim} is no longer held", row.Id, claim);
    }
}
