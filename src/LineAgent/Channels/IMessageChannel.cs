using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Channels;

/// <summary>
/// What a channel is asked to send: the stored row, its line, and the claim of this attempt. <paramref name="KeepBaseline"/>
/// stores the channel's own position (chat.db's MAX(ROWID), null when unread) on the message, on disk, before the send goes
/// out; false when the row is no longer this attempt's. Every send the dispatcher hands to Messages has it: a handed-off
/// Messages send without a stored baseline is taken after a crash as one whose script never started (MessagesChannel.ReconcileAsync).
/// Null only in recovery, which sends nothing. <paramref name="WhyNotNow"/> is asked by Messages before each script (a send
/// may wait for another line's script or a retry's backoff after the hand-off) and before a second try within one attempt
/// (Messages restarted after its script hung before `send`): why it must not go now (its recipient opted out, or replied
/// to a stop-on-reply message, since the dispatcher checked), else null.
/// </summary>
public sealed record SendRequest(MessageRow Message, LineOptions Line, string Claim, Func<long?, CancellationToken, Task<bool>>? KeepBaseline = null,
    Func<CancellationToken, Task<string?>>? WhyNotNow = null);

public abstract record SendOutcome
{
    /// <summary>The channel confirmed the send.</summary>
    public sealed record Sent(string? ChannelRef, DateTimeOffset At) : SendOutcome;

    /// <summary>
    /// The channel accepted it; confirmation comes later (the message stays `sending`). <paramref name="Baseline"/>
    /// is the channel's own position just before the send (chat.db MAX(ROWID)), kept to find the send's row later.
    /// <paramref name="Detail"/>: why it is only maybe sent, when the channel did not simply accept it (the script failed
    /// after `send`); recorded in the message's event.
    /// </summary>
    public sealed record Accepted(string? ChannelRef, long? Baseline = null, string? Detail = null) : SendOutcome;

    /// <summary>
    /// Not sent, because of this machine, not the message (the outbox could not be written: disk full): it goes
    /// back to the queue and out once <paramref name="RetryAfter"/> has passed. Never a failed message for it.
    /// </summary>
    public sealed record Deferred(string Reason, TimeSpan RetryAfter) : SendOutcome;

    /// <summary>
    /// Not sent. <paramref name="ProvenNotSent"/> is true only when the failure proves nothing left
    /// this machine (connection refused, rejected before the send). <paramref name="Retryable"/> marks
    /// the transient ones among those (SMTP 4xx before DATA, Twilio 429): only they are retried.
    /// <paramref name="ChannelCode"/> keeps the provider's raw code (SMTP status, Twilio error). <paramref name="Outage"/>: the
    /// channel could not be reached at all (no connection to the SMTP server or to Twilio, Twilio's rate limit), so nothing of
    /// this message reached it and the same answer awaits every message: never a failure of the message itself.
    /// </summary>
    public sealed record Failed(string Code, string Message, bool ProvenNotSent, bool Retryable = false, long? ChannelCode = null,
        bool Outage = false) : SendOutcome
    {
        public bool MayRetry => ProvenNotSent && Retryable;
    }
}

/// <summary>After a crash: what became of a message that was handed to this channel.</summary>
public abstract record ReconcileOutcome
{
    public sealed record Sent(string? ChannelRef, DateTimeOffset At) : ReconcileOutcome;
    /// <summary>Proven: nothing left this machine, so it may be sent again.</summary>
    public sealed record NotSent : ReconcileOutcome;
    /// <summary>Cannot tell: the message must not be resent blindly.</summary>
    public sealed record Unknown(string Detail) : ReconcileOutcome;
    /// <summary>Still in flight; the channel's own watcher will settle it.</summary>
    public sealed record Pending : ReconcileOutcome;
}

/// <summary>What a channel is like, so that the dispatcher, pacer and responder need not know channels by name.</summary>
/// <param name="ConfirmsLater">Its acceptance is not the outcome: its own watcher confirms or fails the send later (Messages: chat.db).</param>
/// <param name="IsDryRun">Nothing leaves the machine (the outbox).</param>
/// <param name="SettledOnAccept">Once accepted, a send-now request may answer: the final word takes minutes (Twilio's delivery status).</param>
/// <param name="ParallelSends">How many sends of one unpaced line it takes at once (each handed off on disk before it goes, and
/// settled exactly after a crash). 1 for every real channel: Messages runs one script at a time, and an SMTP or Twilio send cut off
/// by a crash cannot be told apart from a sent one.</param>
/// <param name="MarksStart">It stores on the row, on disk, the moment its send really starts (<see cref="SendRequest.KeepBaseline"/>:
/// Messages, just before its script, after it may have waited for another line's script). Until then a handed-off send has
/// reached nothing: a cancel still stops it (its mark's compare-and-set then fails, and the send is not made), and after a
/// crash it is known not sent. The hand-off leaves the mark empty only for such a channel (MessageSql.ClaimAndHandOff).</param>
/// <param name="HealthAnswersInTime">Its health check answers within Bridge:HealthWaitForViews by itself (Messages: a cached or
/// last answer, or `timed_out`); a view waits for any other channel's check only that long (Lines.LineViews).</param>
public sealed record ChannelCapabilities(bool ConfirmsLater = false, bool IsDryRun = false, bool SettledOnAccept = false, int ParallelSends = 1,
    bool MarksStart = false, bool HealthAnswersInTime = false)
{
    public static readonly ChannelCapabilities Immediate = new();
}

public sealed record ChannelHealth(string Channel, string State, string? Detail = null)
{
    public const string Ok = "ok";
    public const string Unavailable = "unavailable";
    public const string Degraded = "degraded";
    public bool IsUsable => State != Unavailable;
}

/// <summary>One way out: the dry-run outbox, Messages.app, SMTP or Twilio.</summary>
public interface IMessageChannel
{
    string Name { get; }

    /// <summary>The longest one attempt can legitimately take (its own timeouts, restarts); null = the configured default.</summary>
    TimeSpan? LongestAttempt => null;

    ChannelCapabilities Capabilities => ChannelCapabilities.Immediate;

    /// <summary>Whether this channel carries <paramref name="type"/> for <paramref name="line"/> as configured.</summary>
    bool Handles(LineOptions line, string type);

    Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct);

    Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct);

    /// <summary>The outcome of this channel's send of <paramref name="messageId"/> is on disk (not called when it could not be written).</summary>
    void OutcomeRecorded(string messageId) { }

    Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct);

    /// <summary>
    /// Why this channel cannot carry <paramref name="type"/> until someone fixes something (an account signed out, a
    /// permission missing), as far as the channel knows without delaying the caller; null when nothing such is known.
    /// `auto` skips a type with one. Not for passing trouble: an open circuit, a server that is down for the moment.
    /// </summary>
    Task<string?> LastingProblemAsync(LineOptions line, string type, CancellationToken ct) => Task.FromResult<string?>(null);
}
