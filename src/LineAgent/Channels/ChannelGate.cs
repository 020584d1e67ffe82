namespace LineAgent.Channels;

/// <summary>
/// The wait of a send for a channel that takes one send at a time from every line (one Messages.app, one SMTP
/// connection). The wait runs inside the attempt's timeout (the Polly pipeline), so a wait cut by that timeout looked
/// like a send that timed out: `sending`, "accepted", then `unconfirmed`, for a message that never reached the channel.
/// A send that cannot enter within <see cref="MaxWait"/>, or whose attempt times out while it waits, is not started;
/// the caller answers <see cref="SendOutcome.Deferred"/> and the message goes back to the queue.
/// </summary>
public static class ChannelGate
{
    /// <summary>Within the 30 s that Messages' LongestAttempt leaves beyond its own worst case, so a send that does enter
    /// still has the whole of its own time.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(20);

    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(30);

    /// <summary>True when entered (the caller releases it); false when the send must not start.</summary>
    public static async Task<bool> EnterAsync(SemaphoreSlim gate, CancellationToken attempt)
    {
        try
        {
            return await gate.WaitAsync(MaxWait, attempt);
        }
        catch (OperationCanceledException)
        {
            return false; // the attempt's timeout (the dispatcher's pipeline has no other token): nothing was handed over
        }
    }
}
