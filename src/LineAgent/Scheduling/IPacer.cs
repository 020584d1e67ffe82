using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Scheduling;

/// <summary>Decides when a line may send its next message.</summary>
public interface IPacer
{
    /// <summary>Null = send now; otherwise the earliest time the message may go, and why.</summary>
    Task<PacingHold?> CheckAsync(LineOptions line, MessageRow message, DateTimeOffset now, CancellationToken ct);

    /// <summary>Records a hand-off so later decisions see it.</summary>
    void Record(LineOptions line, MessageRow message, DateTimeOffset at);
}

public sealed record PacingHold(DateTimeOffset NotBefore, string Reason);
