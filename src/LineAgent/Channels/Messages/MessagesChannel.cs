using LineAgent.Bridge.Osascript;
using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Channels.Messages;

/// <summary>
/// iMessage, and SMS through the iPhone's text forwarding, via Messages.app. A send that Messages
/// accepts stays `sending` until chat.db confirms it (see DeliveryWatcher): exit 0 is not delivery.
/// </summary>
public sealed class MessagesChannel(MessagesBridge bridge, MessagesHealth health, MessagesSendsInFlight inFlight, TimeProvider time) : IMessageChannel
{
    public const string ChannelName = "messages";

    /// <summary>One Messages.app (one Apple ID) per Mac: sends are one at a time, whichever line they come from.</summary>
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    public string Name => ChannelName;

    public ChannelCapabilities Capabilities { get; } = new(ConfirmsLater: true, MarksStart: true, HealthAnswersInTime: true);

    /// <summary>A send killed at the hard timeout, a restart of Messages, and the one retry it allows.</summary>
    public TimeSpan? LongestAttempt => bridge.Options.ScriptTimeout * 2 + Bridge.Osascript.MessagesScripts.RestartHardTimeout + TimeSpan.FromSeconds(30);

    public bool Handles(LineOptions line, string type) => bridge.IsConfigured && type switch
    {
        MessageType.IMessage => line.IMessage.Enabled,
        MessageType.Sms => line.Sms.Enabled && line.Sms.Via == SmsLineOptions.ViaMessages,
        _ => false,
    };

    public async Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct)
    {
        var m = request.Message;
        // Without a place to store the baseline before the script, a crash during it would later read as "never started"
        // (ReconcileAsync) and the message would go out twice: nothing is sent (review).
        if (request.KeepBaseline is not { } keep)
            return new SendOutcome.Failed(FailureCodes.MessagesError,
                "internal error: a Messages send was asked for without storing its chat.db position first; nothing was sent", ProvenNotSent: true);
        var service = MessagesBridge.ServiceType(m.Type);
        BridgeSendResult result;
        long? baseline;
        var waited = !_oneAtATime.Wait(0);
        if (waited && !await ChannelGate.EnterAsync(_oneAtATime, ct))
            return new SendOutcome.Deferred("Messages.app is busy with another line's send (it may be hung or restarting)", ChannelGate.RetryAfter);
        try
        {
            // What the dispatcher checked before the hand-off is asked again once Messages is this send's, before anything
            // reaches it: the send may have waited for another line's script (up to ChannelGate.MaxWait), or be a retry after
            // a backoff (Messages not running). An opt-out or a reply that came meanwhile went out anyway (probe: a
            // suppression answered 201 seconds before the script ran). Nothing was sent: the dispatcher decides again.
            // The attempt's time running out here is not "maybe sent" either (review).
            if (await ChannelGate.WhyNotNowAsync(request, ct) is { } reason)
                return new SendOutcome.Deferred(waited
                    ? $"{reason}, while it waited for Messages.app (busy with another line's send); nothing was sent"
                    : $"{reason} since it was handed over; nothing was sent", WithheldRetryAfter);
            // chat.db's newest row just before the send: our row is above it (see DeliveryWatcher's matching).
            long? read;
            (read, var refused) = ReadBaseline();
            if (refused is not null)
            {
                // A restore that is not one rename leaves no file for a moment, and a read error in the middle of a copy looks
                // like a refusal: asked once more before the send is refused.
                try
                {
                    await Task.Delay(ChatDbRecheckAfter, time, ct);
                }
                catch (OperationCanceledException)
                {
                    // The attempt's time ran out before the script: taken as "maybe sent" it would end unconfirmed (review).
                    return new SendOutcome.Deferred("the attempt's time ran out while chat.db was read again; nothing was sent", ChannelGate.RetryAfter);
                }
                (read, refused) = ReadBaseline();
                if (refused is not null)
                {
                    health.Invalidate();
                    return refused;
                }
            }
            baseline = read;
            // On disk before the script: a crash while it runs would otherwise leave the send with no position among chat.db's
            // rows, and after the restart an earlier send of the same text to that person could take the row it wrote. And
            // a send without it after a crash never reached the script (ReconcileAsync).
            if (await KeepAsync(keep, baseline, ct) is { } notKept)
                return notKept;
            // From here a new chat.db row above the baseline may be this send's: held from other sends until the outcome is written.
            inFlight.Started(m.Id, m.Recipient, baseline, time.GetUtcNow());
            result = await bridge.Scripts.SendAsync(service, m.Recipient, m.Content, ct, request.WhyNotNow is null ? null : token => ChannelGate.WhyNotNowAsync(request, token));
        }
        finally
        {
            _oneAtATime.Release();
        }
        if (result.Accepted)
            return new SendOutcome.Accepted(null, baseline);
        if (result.RetryWithheld is { } withheld)
        {
            health.Invalidate(); // Messages was restarted
            // The dispatcher decides again (a suppressed recipient fails `suppressed`, a reply cancels it `replied`).
            return new SendOutcome.Deferred($"Messages hung before `send` and was restarted; the send was not tried again: {withheld}. Nothing was sent.",
                WithheldRetryAfter);
        }

        var run = result.Last;
        var detail = $"{run.ErrorText}{(result.RestartedMessages ? $" (Messages was restarted once; iMessage account: {result.StatusAfterRestart})" : "")}";
        // What failed says something about Messages or the permission (not about this recipient): ask again next time.
        if (run.ErrorKind is OsaErrorKind.NotAuthorized or OsaErrorKind.AccountMissing or OsaErrorKind.NotRunning
            or OsaErrorKind.TimedOut or OsaErrorKind.AppleEventTimeout)
            health.Invalidate();
        long? raw = run.RawErrorNumber;
        if (!result.ProvenNotSent)
            // It reached `send` and then failed or hung: Messages may have sent it. chat.db decides, within ConfirmTimeout.
            return new SendOutcome.Accepted(null, baseline,
                $"the script failed after it reached send ({detail}{(raw is { } n ? $", error {n}" : "")}): Messages may have sent it");

        return run.ErrorKind switch
        {
            OsaErrorKind.NotAuthorized => new SendOutcome.Failed(FailureCodes.AutomationDenied,
                $"The agent may not control Messages: allow it under System Settings > Privacy & Security > Automation. ({detail})", true, ChannelCode: raw),
            OsaErrorKind.AccountMissing => service switch
            {
                "SMS" => new SendOutcome.Failed(FailureCodes.SmsUnavailable,
                    $"Messages has no SMS account: turn on Text Message Forwarding for this Mac on the iPhone. ({detail})", true, ChannelCode: raw),
                "RCS" => new SendOutcome.Failed(FailureCodes.RcsUnavailable, $"Messages has no RCS account. ({detail})", true, ChannelCode: raw),
                _ => new SendOutcome.Failed(FailureCodes.IMessageAccountMissing,
                    $"Messages has no iMessage account: sign in to iMessage in Messages > Settings > iMessage. ({detail})", true, ChannelCode: raw),
            },
            // The recipient's problem, not the line's: not retried, and the line stays healthy.
            OsaErrorKind.RecipientUnresolvable => new SendOutcome.Failed(FailureCodes.RecipientUnresolvable,
                $"Messages cannot address {m.Recipient} over {service}. ({detail})", true, ChannelCode: raw),
            OsaErrorKind.NotRunning => new SendOutcome.Failed(FailureCodes.MessagesNotRunning,
                $"Messages is not running or quit during the send. ({detail})", true, Retryable: true, ChannelCode: raw),
            OsaErrorKind.BadType => new SendOutcome.Failed(FailureCodes.InvalidService, detail, true, ChannelCode: raw),
            OsaErrorKind.TimedOut or OsaErrorKind.AppleEventTimeout => new SendOutcome.Failed(FailureCodes.MessagesTimeout,
                $"Messages did not answer before the send: {detail}", true, ChannelCode: raw),
            OsaErrorKind.LaunchFailed => new SendOutcome.Failed(UnavailableChannel.Code, detail, true, Retryable: true),
            _ => new SendOutcome.Failed(FailureCodes.MessagesError, detail, true, ChannelCode: raw),
        };
    }

    public void OutcomeRecorded(string messageId) => inFlight.Recorded(messageId);

    /// <summary>A withheld retry goes back to the dispatcher at once: it fails or cancels the message (nothing waits on Messages).</summary>
    private static readonly TimeSpan WithheldRetryAfter = TimeSpan.FromSeconds(1);

    /// <summary>Stores the baseline before the script; null when it is on disk, else why nothing is sent.</summary>
    private static async Task<SendOutcome?> KeepAsync(Func<long?, CancellationToken, Task<bool>> keep, long? baseline, CancellationToken ct)
    {
        try
        {
            if (!await keep(baseline, ct))
                return new SendOutcome.Deferred("the message is no longer this attempt's (cancelled or taken over); nothing was sent", ChannelGate.RetryAfter);
            // The attempt's time ran out while the write waited: a script started now would be killed at once, and whether it
            // reached `send` would be unknown (review). It is not started.
            return ct.IsCancellationRequested
                ? new SendOutcome.Deferred("the attempt's time ran out while its chat.db position was stored; nothing was sent", ChannelGate.RetryAfter)
                : null;
        }
        catch (Exception e)
        {
            // A full or failing disk: the script has not run, so nothing was sent; it waits with the rest (StorageHealth says why).
            return new SendOutcome.Deferred($"its chat.db position could not be stored before the script ({e.Message}); nothing was sent",
                ChannelGate.RetryAfter);
        }
    }

    /// <summary>
    /// After a restart chat.db decides (the delivery watcher confirms or times the message out), unless the send never
    /// reached its script: its baseline is stored before the script starts, so a handed-off send without one that Messages
    /// never accepted (it waited at the Messages gate, or the agent died first) was not sent, and goes out again. Before,
    /// it ended `unconfirmed` ("maybe sent") after Bridge:ConfirmTimeout.
    /// </summary>
    public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) =>
        Task.FromResult<ReconcileOutcome>(request.Message is { ScriptBaseline: null, AcceptedAt: null }
            ? new ReconcileOutcome.NotSent()
            : new ReconcileOutcome.Pending());

    /// <summary>How long a send waits to read a chat.db that is missing or refused a second time before it is refused.</summary>
    public static readonly TimeSpan ChatDbRecheckAfter = TimeSpan.FromMilliseconds(250);

    /// <summary>chat.db's MAX(ROWID) now (null: busy or changed under the agent, so the row is matched by text), or why no send can be made.</summary>
    private (long? Baseline, SendOutcome.Failed? Refused) ReadBaseline()
    {
        try
        {
            return (bridge.Reader.MaxRowId(), null);
        }
        catch (Bridge.ChatDb.ChatDbUnavailableException e) when (e.Access is Bridge.ChatDb.ChatDbAccess.Denied or Bridge.ChatDb.ChatDbAccess.Missing)
        {
            // No Full Disk Access, or no chat.db at all: Messages might well send it, but the agent could never confirm
            // it, and the message would end `unconfirmed` (maybe sent, not to be retried) for something that is the
            // machine's setup. So it is not handed over; the failure says what to fix, and a retry needs no force.
            return (null, new SendOutcome.Failed(FailureCodes.ChatDbUnavailable,
                $"chat.db cannot be read, so a send could not be confirmed; nothing was sent. {e.Message}", ProvenNotSent: true));
        }
        catch (Bridge.ChatDb.ChatDbUnavailableException e) when (e.Access is Bridge.ChatDb.ChatDbAccess.Damaged)
        {
            // A file that is there but not a database SQLite can read (damaged, replaced by something else): the script
            // has not run, so nothing was sent; and a send now could never be confirmed from it.
            return (null, new SendOutcome.Failed(FailureCodes.MessagesError,
                $"chat.db could not be read before the send ({e.Message}); nothing was sent. Check {bridge.Reader.Path}.", ProvenNotSent: true));
        }
        catch (Bridge.ChatDb.ChatDbUnavailableException)
        {
            // Busy for the moment, or its columns changed under the agent: the send goes on, and the watcher matches its
            // row by text among the rows written after the hand-off.
            return (null, null);
        }
    }

    /// <summary>How long `auto` waits for a health check that is not cached: a hung Messages must not hold every request.</summary>
    public static readonly TimeSpan HealthWaitForRouting = TimeSpan.FromSeconds(2);

    public async Task<string?> LastingProblemAsync(LineOptions line, string type, CancellationToken ct) =>
        (await health.CheckWithinAsync(HealthWaitForRouting, ct))?.LastingProblem(type);

    public async Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct)
    {
        var report = await health.CheckForViewAsync(ct);
        return report.Problem(type) is { } problem
            ? new ChannelHealth(Name, ChannelHealth.Unavailable, problem)
            : new ChannelHealth(Name, ChannelHealth.Ok);
    }
}
