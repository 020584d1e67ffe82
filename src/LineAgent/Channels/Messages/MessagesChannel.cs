using LineAgent.Bridge.Osascript;
using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Channels.Messages;

/// <summary>
/// iMessage, and SMS through the iPhone's text forwarding, via Messages.app. A send that Messages
/// accepts stays `sending` until chat.db confirms it (see DeliveryWatcher): exit 0 is not delivery.
/// </summary>
public sealed class MessagesChannel(MessagesBridge bridge, MessagesHealth health) : IMessageChannel
{
    public const string ChannelName = "messages";

    /// <summary>One Messages.app (one Apple ID) per Mac: sends are one at a time, whichever line they come from.</summary>
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    public string Name => ChannelName;

    public bool Handles(LineOptions line, string type) => bridge.IsConfigured && type switch
    {
        MessageType.IMessage => line.IMessage.Enabled,
        MessageType.Sms => line.Sms.Enabled && line.Sms.Via == SmsLineOptions.ViaMessages,
        _ => false,
    };

    public async Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct)
    {
        var m = request.Message;
        BridgeSendResult result;
        await _oneAtATime.WaitAsync(ct);
        try
        {
            result = await bridge.Scripts.SendAsync(MessagesBridge.ServiceType(m.Type), m.Recipient, m.Content, ct);
        }
        finally
        {
            _oneAtATime.Release();
        }
        if (result.Accepted)
            return new SendOutcome.Accepted(null);

        var run = result.Last;
        var detail = $"{run.ErrorText}{(result.RestartedMessages ? " (Messages was restarted once)" : "")}";
        if (run.ErrorKind is OsaErrorKind.NotAuthorized or OsaErrorKind.CantGet or OsaErrorKind.TimedOut or OsaErrorKind.AppleEventTimeout)
            health.Invalidate();
        if (!result.ProvenNotSent)
            // It reached `send` and then failed or hung: Messages may have sent it. chat.db decides, within ConfirmTimeout.
            return new SendOutcome.Accepted(null);

        return run.ErrorKind switch
        {
            OsaErrorKind.NotAuthorized => new SendOutcome.Failed("automation_denied",
                $"The agent may not control Messages: allow it under System Settings > Privacy & Security > Automation. ({detail})", true),
            OsaErrorKind.VariableNotDefined => new SendOutcome.Failed("sms_unavailable",
                $"Messages has no SMS account: turn on Text Message Forwarding for this Mac on the iPhone. ({detail})", true),
            OsaErrorKind.CantGet => new SendOutcome.Failed("messages_unavailable",
                $"Messages could not find the account or recipient: is it running and signed in? ({detail})", true, Retryable: true),
            OsaErrorKind.BadType => new SendOutcome.Failed("invalid_service", detail, true),
            OsaErrorKind.TimedOut or OsaErrorKind.AppleEventTimeout => new SendOutcome.Failed("messages_timeout",
                $"Messages did not answer before the send: {detail}", true),
            OsaErrorKind.LaunchFailed => new SendOutcome.Failed(UnavailableChannel.Code, detail, true, Retryable: true),
            _ => new SendOutcome.Failed("messages_error", detail, true),
        };
    }

    /// <summary>After a restart chat.db decides; the delivery watcher confirms or times the message out.</summary>
    public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) =>
        Task.FromResult<ReconcileOutcome>(new ReconcileOutcome.Pending());

    public async Task<ChannelHealth> CheckHealthAsync(LineOptions line, string type, CancellationToken ct)
    {
        var report = await health.CheckAsync(ct);
        return report.Problem(type) is { } problem
            ? new ChannelHealth(Name, ChannelHealth.Unavailable, problem)
            : new ChannelHealth(Name, ChannelHealth.Ok);
    }
}
