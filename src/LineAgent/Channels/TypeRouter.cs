using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Channels;

/// <summary>Chooses the concrete type for `auto`.</summary>
public interface ITypeRouter
{
    Task<string> ResolveAutoAsync(LineOptions line, string? phone, string? email, CancellationToken ct);
}
