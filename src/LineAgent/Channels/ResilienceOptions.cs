namespace LineAgent.Channels;

/// <summary>`Resilience:*`: retries (only where nothing was sent) and the circuit breaker of each channel.</summary>
public sealed class ResilienceOptions
{
    public const string Section = "Resilience";

    /// <summary>Retries after the first attempt, only for failures that prove nothing was sent.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>First backoff; doubles each retry, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Outer limit of one send (the channels have their own timeouts inside it).</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The circuit opens when this share of sends failed at channel level within the sampling window...</summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>...and at least this many sends were made in it.</summary>
    public int MinimumThroughput { get; set; } = 4;

    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long an open circuit holds messages back (they wait as `queued`), and the first hold of a settings fault (ChannelResilience.AfterAttempt).</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromMinutes(1);
}
