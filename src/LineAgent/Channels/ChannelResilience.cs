using System.Collections.Concurrent;
using LineAgent.Messages;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace LineAgent.Channels;

/// <summary>
/// A Polly v8 pipeline per channel: retry only what proves nothing was sent (with exponential backoff), a circuit breaker
/// on channel-level failures (each attempt counts: on a paced line a message per 45 s would rarely fill its sample),
/// and a timeout per attempt.
/// While a circuit is open, due messages wait as `queued` instead of failing.
/// </summary>
public sealed class ChannelResilience(IOptions<ResilienceOptions> options, TimeProvider time, ILogger<ChannelResilience> log)
{
    private readonly ConcurrentDictionary<string, ResiliencePipeline<SendOutcome>> _pipelines = new();
    private readonly ConcurrentDictionary<string, DateTimeOffset> _openUntil = new();
    // Channels whose circuit opened with no answer from the channel since: an outage under way, since when. Ended by an answer
    // (AfterAttempt), not by the circuit closing: a half-open trial that never reached the channel (it waited for the SMTP
    // gate and was deferred) counts as a success for the circuit (review).
    private readonly ConcurrentDictionary<string, DateTimeOffset> _outages = new();

    /// <summary>
    /// Whether the channel's circuit has opened and the channel has not answered since (a send out, or a reply with a code):
    /// asked before a send, so that a send meeting an outage that was already under way waits (<see cref="AfterAttempt"/>).
    /// </summary>
    public bool InOutage(string channelName) => _outages.ContainsKey(channelName);

    /// <summary>Raised before each retry: (message id, attempt number, delay, the failure that caused it).</summary>
    public event Action<string, int, TimeSpan, SendOutcome.Failed>? Retrying;

    public ResiliencePipeline<SendOutcome> For(IMessageChannel channel) => _pipelines.GetOrAdd(channel.Name, _ => Build(channel));

    /// <summary>
    /// Until when the channel's messages wait: its circuit is open, or a settings fault holds it (<see cref="AfterAttempt"/>).
    /// Null while neither holds it.
    /// </summary>
    public DateTimeOffset? OpenUntil(string channelName, string? lineId = null)
    {
        var now = time.GetUtcNow();
        DateTimeOffset? open = _openUntil.TryGetValue(channelName, out var until) && until > now ? until : null;
        lock (_settingsFaults)
            foreach (var key in FaultKeys(channelName, lineId))
                if (_settingsFaults.TryGetValue(key, out var fault) && fault.Until > now && (open is null || fault.Until > open))
                    open = fault.Until;
        return open;
    }

    /// <summary>Where a settings fault is kept: by channel, and for a line's own setting (its sender) by channel and line.</summary>
    private static IEnumerable<string> FaultKeys(string channelName, string? lineId) =>
        lineId is null ? [channelName] : [channelName, LineKey(channelName, lineId)];

    private static string LineKey(string channelName, string lineId) => $"{channelName}\u0001{lineId}";

    /// <summary>Why the channel's messages wait (<see cref="OpenUntil"/>), in a sentence.</summary>
    public string WhyHeld(string channelName, string? lineId = null)
    {
        lock (_settingsFaults)
            return _settingsFaults.TryGetValue(channelName, out var fault) && fault.Until > time.GetUtcNow()
                ? $"{channelName} refuses every send until a setting is fixed ({fault.Failure.Code}: {fault.Failure.Message})"
                : lineId is not null && _settingsFaults.TryGetValue(LineKey(channelName, lineId), out var own) && own.Until > time.GetUtcNow()
                ? $"{channelName} refuses every send of line {lineId} until its setting is fixed ({own.Failure.Code}: {own.Failure.Message})"
                : $"{channelName} is failing (circuit open)";
    }

    /// <summary>
    /// Failures that no send on the channel can get past until someone changes a setting or a permission: a refused login
    /// (Twilio, SMTP), a Twilio:BaseUrl without the Messages API, an SMTP server without what Email:Smtp asks for,
    /// Automation denied. Nothing was sent, and the next message would meet the same answer. Each is the channel's, the
    /// same for every line (one login, one create URL, one Email:Smtp, one Messages.app's permission).
    /// </summary>
    public static bool IsSettingsFault(SendOutcome outcome) => outcome is SendOutcome.Failed { ProvenNotSent: true } f
        && (f.Code is FailureCodes.AutomationDenied or FailureCodes.TwilioAuthFailed or FailureCodes.TwilioEndpointNotFound
            or FailureCodes.SmtpAuthFailed or FailureCodes.SmtpUnsupported || IsLineSettingsFault(f));

    /// <summary>
    /// A fault of the line's own setting: its sender (Twilio refused the line's Sms:From, 21212/21606/21659/21660; a line's
    /// Email:From that cannot be read). Every send of that line meets it, other lines' sends on the channel do not: held by
    /// line (probe: a bad From failed a whole bulk one message at a time while the line said `ok`).
    /// </summary>
    public static bool IsLineSettingsFault(SendOutcome outcome) =>
        outcome is SendOutcome.Failed { ProvenNotSent: true, Code: FailureCodes.InvalidSender };

    private sealed record SettingsFault(SendOutcome.Failed Failure, DateTimeOffset Until, TimeSpan Hold);

    /// <summary>
    /// The longest wait between two trials of a settings fault (they double from BreakDuration): a permission granted in
    /// System Settings is picked up within it, and a trial that keeps failing adds events to its message only this often.
    /// </summary>
    public static readonly TimeSpan LongestSettingsHold = TimeSpan.FromMinutes(5);

    /// <summary>
    /// A fault not met again within this time after its hold ended is forgotten: the next send fails with it again, so a
    /// send-now request hours later is told what to fix instead of waiting. Long enough that messages held meanwhile by a
    /// pacing cap (an hour's) do not each start it again (review: 5 minutes did).
    /// </summary>
    public static readonly TimeSpan ForgetSettingsFaultAfter = TimeSpan.FromHours(1);

    // By channel: a settings fault is the same for every line (review: kept by line, one refused login failed a message on
    // each line, and a send that went out on one line did not end the others' holds).
    private readonly Dictionary<string, SettingsFault> _settingsFaults = new();

    /// <summary>
    /// Notes what a send (of line <paramref name="lineId"/>) on <paramref name="channel"/> came to. On a settings fault
    /// (<see cref="IsSettingsFault"/>) the channel's due messages, on every line, are held for BreakDuration at once, whatever
    /// the pacing (then twice as long after each trial that meets one again, up to <see cref="LongestSettingsHold"/>): the
    /// message that found the fault fails with it (its sender learns why), and every later one that meets it, as the trial
    /// after a hold or sent during one, waits instead (returned: how long), until a send goes out. Before, only the circuit
    /// held them, and on a paced line (one attempt per 30-60 s) it never opened: each due message failed in turn. Kept in
    /// memory: after a restart the first send finds the fault again.
    /// <para>An outage (<see cref="SendOutcome.Failed.Outage"/>: the SMTP server or Twilio could not be reached, Twilio's rate
    /// limit) goes the same way: the send whose attempts opened the circuit fails with it, and a send that meets it when it
    /// was already under way (<paramref name="outageBefore"/>: <see cref="InOutage"/> before the send), as the trial after a
    /// break, waits until the circuit's next trial. Before, each held message became the trial in turn and failed: an hour's
    /// outage failed one message a minute (review). Only such failures: nothing of the message reached the channel, so it
    /// cannot be the message's own fault, and a message that is (a recipient the server refuses) still fails instead of
    /// being the trial for ever.</para>
    /// </summary>
    public TimeSpan? AfterAttempt(IMessageChannel channel, string lineId, SendOutcome outcome, bool outageBefore = false)
    {
        if (outcome is SendOutcome.Sent or SendOutcome.Accepted or SendOutcome.Failed { Outage: false, ChannelCode: not null })
            _outages.TryRemove(channel.Name, out _); // the channel answered: the outage is over
        if (outcome is SendOutcome.Sent or SendOutcome.Accepted)
        {
            bool cleared;
            SettingsFault? was;
            lock (_settingsFaults)
            {
                cleared = _settingsFaults.Remove(channel.Name, out was);
                if (_settingsFaults.Remove(LineKey(channel.Name, lineId), out var own))
                    (cleared, was) = (true, was ?? own);
            }
            if (cleared)
                log.LogInformation("Channel {Channel} sends again (line {Line}) after {Code}", channel.Name, lineId, was!.Failure.Code);
            return null;
        }
        if (outageBefore && outcome is SendOutcome.Failed { Outage: true, ProvenNotSent: true })
        {
            var open = OpenUntil(channel.Name) - time.GetUtcNow();
            return open > TimeSpan.Zero ? open : options.Value.BreakDuration;
        }
        if (outcome is SendOutcome.Failed { Outage: true, MayRetry: true } && options.Value.MaxRetries + 1 >= Math.Max(2, options.Value.MinimumThroughput))
        {
            // Every attempt of this message (retries exhausted, as many as the circuit needs at least) found the channel
            // unreachable: an outage by itself. On a line that had just sent well the sends before outweighed its failed
            // attempts in the failure ratio, and message after message failed the same way (probe N: five). It fails with
            // the reason; the next ones wait as behind an open circuit, and the one after the break is the trial.
            var found = time.GetUtcNow();
            if (_outages.TryAdd(channel.Name, found))
            {
                _openUntil[channel.Name] = found + options.Value.BreakDuration;
                log.LogWarning("Channel {Channel} could not be reached by any of a message's {Attempts} attempts; its due messages wait as queued for {Break}",
                    channel.Name, options.Value.MaxRetries + 1, options.Value.BreakDuration);
            }
            return null;
        }
        if (!IsSettingsFault(outcome))
            return null;
        var failure = (SendOutcome.Failed)outcome;
        var key = IsLineSettingsFault(failure) ? LineKey(channel.Name, lineId) : channel.Name;
        var now = time.GetUtcNow();
        var first = options.Value.BreakDuration;
        TimeSpan? wait;
        lock (_settingsFaults)
        {
            if (!_settingsFaults.TryGetValue(key, out var old) || old.Until + ForgetSettingsFaultAfter < now)
            {
                _settingsFaults[key] = new SettingsFault(failure, now + first, first);
                wait = null;
            }
            else if (old.Until > now)
            {
                // Sent while the hold runs (a send-now as the hold began, another line's trial): it waits out the same hold.
                _settingsFaults[key] = old with { Failure = failure };
                wait = old.Until - now;
            }
            else
            {
                var hold = TimeSpan.FromTicks(Math.Min(old.Hold.Ticks * 2, Math.Max(first.Ticks, LongestSettingsHold.Ticks)));
                _settingsFaults[key] = new SettingsFault(failure, now + hold, hold);
                wait = hold;
            }
        }
        if (wait is null)
            log.LogWarning("Channel {Channel} refused a send of line {Line} ({Code}: {Reason}); its due messages on {Which} wait as queued " +
                "until a send goes out, tried again after {Break}, then less often", channel.Name, lineId, failure.Code, failure.Message,
                key == channel.Name ? "every line" : "that line", first);
        return wait;
    }

    public static readonly ResiliencePropertyKey<string> MessageId = new("lineagent.message-id");

    /// <summary>Set on the send whose attempt opened the circuit: only that one ends with its last failure when an outage refuses its retry.</summary>
    public static readonly ResiliencePropertyKey<bool> OpenedTheCircuit = new("lineagent.opened-the-circuit");

    /// <summary>The last failed attempt of this send, set before each retry (see <see cref="Build"/>).</summary>
    public static readonly ResiliencePropertyKey<SendOutcome.Failed> LastFailure = new("lineagent.last-failure");

    /// <summary>The send's <see cref="RetryBackoff"/>, told when a retry's wait begins.</summary>
    public static readonly ResiliencePropertyKey<RetryBackoff> Backoff = new("lineagent.retry-backoff");

    /// <summary>
    /// Failures that say the channel is unwell (not the recipient): they count towards opening the circuit,
    /// so while Messages is wedged or not permitted, due messages wait instead of failing one by one.
    /// </summary>
    /// <remarks>A refused login (Twilio 401/403, SMTP authentication) is the channel's, not the recipient's: a rotated token
    /// must not fail a whole bulk one message at a time.</remarks>
    /// <remarks>A line's own settings fault (its sender) is not the channel's: the circuit is shared by every line, and two
    /// trials of one line's bad From opened it for the others (review).</remarks>
    public static bool IsChannelFault(SendOutcome outcome) => outcome is SendOutcome.Failed f
        && (f.Retryable || !f.ProvenNotSent || f.Code is FailureCodes.MessagesTimeout || IsSettingsFault(f)) && !IsLineSettingsFault(f);

    private ResiliencePipeline<SendOutcome> Build(IMessageChannel target)
    {
        var channel = target.Name;
        var o = options.Value;
        var builder = new ResiliencePipelineBuilder<SendOutcome> { TimeProvider = time, Name = channel };
        if (o.MaxRetries > 0)
            builder.AddRetry(new RetryStrategyOptions<SendOutcome>
            {
                MaxRetryAttempts = o.MaxRetries,
                Delay = o.RetryBaseDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Result is SendOutcome.Failed { MayRetry: true }),
                OnRetry = args =>
                {
                    if (args.Outcome.Result is SendOutcome.Failed f)
                    {
                        // Kept for the dispatcher: when this message's own failures open the circuit, its next attempt is
                        // refused, and the message ends with this failure instead of waiting as the next half-open trial.
                        args.Context.Properties.Set(LastFailure, f);
                        if (args.Context.Properties.TryGetValue(MessageId, out var id))
                            Retrying?.Invoke(id, args.AttemptNumber + 1, args.RetryDelay, f);
                        if (args.Context.Properties.TryGetValue(Backoff, out var backoff))
                            backoff.Begin();
                    }
                    return default;
                },
            });
        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<SendOutcome>
        {
            FailureRatio = o.FailureRatio,
            MinimumThroughput = Math.Max(2, o.MinimumThroughput),
            SamplingDuration = o.SamplingDuration,
            BreakDuration = o.BreakDuration,
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Result is { } r && IsChannelFault(r)),
            OnOpened = args =>
            {
                _openUntil[channel] = time.GetUtcNow() + args.BreakDuration;
                _outages.TryAdd(channel, time.GetUtcNow());
                args.Context.Properties.Set(OpenedTheCircuit, true);
                log.LogWarning("Circuit of channel {Channel} opened for {Duration}: due messages wait as queued", channel, args.BreakDuration);
                return default;
            },
            OnClosed = _ =>
            {
                _openUntil.TryRemove(channel, out DateTimeOffset _);
                log.LogInformation("Circuit of channel {Channel} closed", channel);
                return default;
            },
            OnHalfOpened = _ =>
            {
                _openUntil.TryRemove(channel, out DateTimeOffset _);
                return default;
            },
        });
        // Never shorter than what the channel itself may take (Messages: a send, a restart, a second send).
        var attempt = target.LongestAttempt is { } longest && longest > o.AttemptTimeout ? longest : o.AttemptTimeout;
        builder.AddTimeout(new TimeoutStrategyOptions { Timeout = attempt });
        return builder.Build();
    }
}

/// <summary>
/// A send between two attempts, in its retry's wait: the one moment a stop of the agent may end it, as no attempt is in
/// flight and the ones before failed in a way that proves nothing was sent (retries are made only then). Its token is the
/// send's resilience context's and is cancelled during such a wait, and during an attempt only when the agent's shutdown
/// timeout runs out (<see cref="Cut"/>): the send then goes back to the queue and goes out after the restart. Before, the agent waited out the backoff (2 s doubling, with jitter) and,
/// when <c>Agent:ShutdownTimeout</c> ran out first, left the row `sending`, which the next start could only fail as
/// `interrupted` (maybe sent), though nothing had been.
/// </summary>
/// <remarks>Its token source is never disposed: it has no timer, and a stop may still call <see cref="Stop"/> on a send that has
/// just left the pipeline in its wait (a circuit that refused the retry) (review).</remarks>
public sealed class RetryBackoff(Func<bool> stopping)
{
    private const int Attempting = 0, Waiting = 1, Stopped = 2;
    private int _phase;
    private readonly CancellationTokenSource _stop = new();

    public CancellationToken Token => _stop.Token;

    /// <summary>A stop ended the send's retry wait: nothing more was sent.</summary>
    public bool WasStopped => Volatile.Read(ref _phase) == Stopped;

    /// <summary>The retry's wait begins; it ends at once when the agent is already stopping.</summary>
    public void Begin()
    {
        Interlocked.CompareExchange(ref _phase, Waiting, Attempting);
        if (stopping())
            Stop();
    }

    /// <summary>An attempt begins; false when a stop ended the wait first (the attempt must not be made).</summary>
    public bool TryAttempt() => Interlocked.CompareExchange(ref _phase, Attempting, Waiting) != Stopped;

    /// <summary>Ends the send's retry wait, if it is in one.</summary>
    public void Stop()
    {
        if (Interlocked.CompareExchange(ref _phase, Stopped, Waiting) == Waiting)
            _stop.Cancel();
    }

    /// <summary>The agent's shutdown timeout ran out: the send is cut, in its retry wait or in an attempt.</summary>
    public bool WasCut => Volatile.Read(ref _cut);
    private bool _cut;

    /// <summary>Cuts the send wherever it is (<see cref="WasCut"/>): a wait ends as by <see cref="Stop"/>, an attempt is cancelled.</summary>
    public void Cut()
    {
        Volatile.Write(ref _cut, true);
        Stop();
        _stop.Cancel();
    }

}
