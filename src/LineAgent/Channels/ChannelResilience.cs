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

    /// <summary>Raised before each retry: (message id, attempt number, delay, the failure that caused it).</summary>
    public event Action<string, int, TimeSpan, SendOutcome.Failed>? Retrying;

    public ResiliencePipeline<SendOutcome> For(IMessageChannel channel) => _pipelines.GetOrAdd(channel.Name, _ => Build(channel));

    /// <summary>When the channel's circuit is open: until when. Null while it is closed or half-open.</summary>
    public DateTimeOffset? OpenUntil(string channelName) =>
        _openUntil.TryGetValue(channelName, out var until) && until > time.GetUtcNow() ? until : null;

    public static readonly ResiliencePropertyKey<string> MessageId = new("lineagent.message-id");

    /// <summary>The last failed attempt of this send, set before each retry (see <see cref="Build"/>).</summary>
    public static readonly ResiliencePropertyKey<SendOutcome.Failed> LastFailure = new("lineagent.last-failure");

    /// <summary>
    /// Failures that say the channel is unwell (not the recipient): they count towards opening the circuit,
    /// so while Messages is wedged or not permitted, due messages wait instead of failing one by one.
    /// </summary>
    /// <remarks>A refused login (Twilio 401/403, SMTP authentication) is the channel's, not the recipient's: a rotated token
    /// must not fail a whole bulk one message at a time.</remarks>
    public static bool IsChannelFault(SendOutcome outcome) => outcome is SendOutcome.Failed f
        && (f.Retryable || !f.ProvenNotSent || f.Code is FailureCodes.MessagesTimeout or FailureCodes.AutomationDenied
            or FailureCodes.TwilioAuthFailed or FailureCodes.TwilioEndpointNotFound or FailureCodes.SmtpAuthFailed or FailureCodes.SmtpUnsupported);

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
