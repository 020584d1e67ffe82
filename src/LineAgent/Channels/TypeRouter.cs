using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Channels;

/// <summary>Chooses the concrete type for `auto`.</summary>
public interface ITypeRouter
{
    Task<string> ResolveAutoAsync(LineOptions line, string? phone, string? email, CancellationToken ct);
}

/// <summary>Without availability knowledge: a phone gets iMessage (when the line has it), an email gets email.</summary>
public sealed class DefaultTypeRouter : ITypeRouter
{
    public Task<string> ResolveAutoAsync(LineOptions line, string? phone, string? email, CancellationToken ct) =>
        Task.FromResult(phone is not null
            ? line.IMessage.Enabled ? MessageType.IMessage : MessageType.Sms
            : MessageType.Email);
}
