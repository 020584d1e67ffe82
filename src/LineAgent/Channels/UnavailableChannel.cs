using LineAgent.Lines;

namespace LineAgent.Channels;

/// <summary>
/// Stands where no working channel exists for a type on a line (no Messages.app, no SMTP settings):
/// every send fails with channel_unavailable and a reason, never a pretend success.
/// </summary>
public sealed class UnavailableChannel(string type, string reason) : IMessageChannel
{
    public const string Code = "channel_unavailable";

    public string Name => "unavailable";
    public string Reason => reason;

    public bool Handles(LineOptions line, string t) => t == type;

    public Task<SendOutcome> SendAsync(SendRequest request, CancellationToken ct) =>
        Task.FromResult<SendOutcome>(new SendOutcome.Failed(Code, reason, ProvenNotSent: true));

    // Nothing was ever handed anywhere by this channel.
    public Task<ReconcileOutcome> ReconcileAsync(SendRequest request, CancellationToken ct) =>
        Task.FromResult<ReconcileOutcome>(new ReconcileOutcome.NotSent());

    public Task<ChannelHealth> CheckHealthAsync(LineOptions line, string t, CancellationToken ct) =>
        Task.FromResult(new ChannelHealth(type, ChannelHealth.Unavailable, reason));
}
