using Dapper;
using LineAgent.Channels;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;

namespace LineAgent.Scheduling;

/// <summary>
/// Sends due messages: one worker per line, so a line sends one message at a time in due order.
/// A worker sleeps until its line's next due time or a signal — there is no fixed poll.
/// </summary>
public sealed class Dispatcher(
    MessageStore store,
    LineRegistry lines,
    ChannelRouter router,
    DispatchSignal signal,
    Suppressions.SuppressionList suppressions,
    IPacer pacer,
    TimeProvider time,
    ILogger<Dispatcher> log) : BackgroundService
{
    /// <summary>Longest sleep before re-checking; a safety net for sleep and wall-clock changes, not the schedule.</summary>
    public static readonly TimeSpan MaxSleep = TimeSpan.FromSeconds(30);

    private readonly string _instance = Guid.NewGuid().ToString("N")[..8];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> _sleepingUntil = new();

    /// <summary>When the line's worker is asleep: the time it will wake at unless signalled. Null while it works.</summary>
    public DateTimeOffset? SleepingUntil(string lineId) => _sleepingUntil.TryGetValue(lineId, out var t) ? t : null;

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        lines.ActiveChanged += signal.Notify;
        var workers = lines.All.Select(line => Task.Run(() => RunLineAsync(line, stoppingToken), CancellationToken.None));
        return Task.WhenAll(workers);
    }

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

    /// <summary>One decision for a line: send the next due message, hold it, or sleep until something changes.</summary>
    internal async Task StepAsync(LineOptions line, CancellationToken ct)
    {
        var wake = signal.Next(line.Id);
        var now = time.GetUtcNow();
        MessageRow? due = null;
        if (lines.IsActive(line.Id))
        {
            await using var c = await store.Db.OpenAsync(ct);
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
        else
        {
            await SleepAsync(line.Id, wake, now + MaxSleep, ct);
            return;
        }

        var hold = await pacer.CheckAsync(line, due, now, ct);
        if (hold is not null)
        {
            if (due.NotBefore != Time.ToMs(hold.NotBefore) || due.Status != MessageStatus.Queued)
                await store.TransitionAsync(MessageSql.Hold,
                    new { due.Id, NotBefore = Time.ToMs(hold.NotBefore), Now = Time.ToMs(now) },
                    code: "paced", detail: $"held until {hold.NotBefore:O}: {hold.Reason}", ct: ct);
            await SleepAsync(line.Id, wake, hold.NotBefore, ct);
            return;
        }

        await SendAsync(line, due, now, ct);
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

    internal async Task SendAsync(LineOptions line, MessageRow due, DateTimeOffset now, CancellationToken ct)
    {
        var claim = $"{_instance}-{Guid.NewGuid():N}";
        var channel = router.Resolve(line, due.Type);
        var claimed = await store.TransitionAsync(MessageSql.Claim,
            new { due.Id, Claim = claim, Now = Time.ToMs(now) }, detail: $"handing to {channel.Name}", ct: ct);
        if (claimed is null)
            return; // cancelled, rescheduled or taken by another dispatcher in the meantime

        if (await suppressions.IsSuppressedAsync(claimed.Recipient, ct))
        {
            await store.TransitionAsync(MessageSql.CompleteFailed, new
            {
                claimed.Id, Claim = claim, Code = "suppressed", Now = Time.ToMs(time.GetUtcNow()),
                Message = $"{claimed.Recipient} opted out (suppression list); nothing was sent.",
            }, ct: ct);
            return;
        }

        await using (var c = await store.Db.OpenAsync(ct))
        {
            var marked = await c.ExecuteAsync(new CommandDefinition(MessageSql.MarkHanded,
                new { claimed.Id, Claim = claim, Now = Time.ToMs(time.GetUtcNow()), Channel = channel.Name, DryRun = channel is DryRunOutboxChannel },
                cancellationToken: ct));
            if (marked == 0)
                return;
        }

        pacer.Record(line, claimed, time.GetUtcNow());
        SendOutcome outcome;
        try
        {
            // Not the stopping token: a send in flight is finished, not abandoned, on shutdown.
            outcome = await channel.SendAsync(new SendRequest(claimed, line, claim), CancellationToken.None);
        }
        catch (Exception ex)
        {
            log.LogError(ex, "Channel {Channel} threw for {Id}", channel.Name, claimed.Id);
            outcome = new SendOutcome.Failed("channel_error", $"{channel.Name}: {ex.Message}", ProvenNotSent: false);
        }
        await RecordOutcomeAsync(claimed, claim, channel, outcome);
    }

    private async Task RecordOutcomeAsync(MessageRow row, string claim, IMessageChannel channel, SendOutcome outcome)
    {
        var now = Time.ToMs(time.GetUtcNow());
        var result = outcome switch
        {
            SendOutcome.Sent s => await store.TransitionAsync(MessageSql.CompleteSent,
                new { row.Id, Claim = claim, SentAt = Time.ToMs(s.At), s.ChannelRef, Now = now }, detail: $"sent by {channel.Name}"),
            SendOutcome.Accepted a => await store.TransitionAsync(MessageSql.CompleteAccepted,
                new { row.Id, Claim = claim, a.ChannelRef, Now = now }, code: "accepted", detail: $"accepted by {channel.Name}; awaiting confirmation"),
            SendOutcome.Failed f => await store.TransitionAsync(MessageSql.CompleteFailed,
                new { row.Id, Claim = claim, f.Code, f.Message, Now = now }),
            _ => throw new InvalidOperationException($"Unknown outcome {outcome}"),
        };
        if (result is null)
            log.LogWarning("Outcome of {Id} not recorded: the claim {Claim} is no longer held", row.Id, claim);
    }
}
