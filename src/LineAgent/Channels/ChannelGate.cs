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

    /// <summary>
    /// The dispatcher's checks asked again inside the gate, before anything reaches the channel: a send may have waited
    /// there for another line's (probe: an opt-out answered 201 seconds before the send went). Null when it may go; else why
    /// not, including when the check could not be made (a storage fault, the attempt's time running out): nothing was sent.
    /// </summary>
    public static async Task<string?> WhyNotNowAsync(SendRequest request, CancellationToken ct)
    {
        if (request.WhyNotNow is not { } ask)
            return null;
        try
        {
            return await ask(ct);
        }
        catch (OperationCanceledException)
        {
            return "the attempt's time ran out while it was checked again";
        }
        catch (Exception e)
        {
            return $"whether it may still go could not be checked ({e.Message})";
        }
    }

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
