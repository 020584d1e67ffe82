using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Scheduling;

/// <summary>Decides when a line may send its next message.</summary>
public interface IPacer
{
    Task<PacingDecision> CheckAsync(LineOptions line, MessageRow message, DateTimeOffset now, CancellationToken ct);

    /// <summary>Whether the line's rate, window and new-conversation limits apply to <paramref name="type"/> (each send then depends on the ones before it).</summary>
    bool Applies(LineOptions line, string type);

    /// <summary>A send of the line has come back from its channel at <paramref name="at"/>: the minimum gap counts from then.</summary>
    void SendEnded(string lineId, DateTimeOffset at) { }
}

/// <summary>
/// Null <see cref="Hold"/> = send now. <see cref="NewConversation"/>: the line never wrote to this address.
/// <see cref="Never"/>: why the message can never go (its recipient's hours never meet the line's window); it is failed.
/// </summary>
public sealed record PacingDecision(PacingHold? Hold, bool NewConversation, string? Never = null)
{
    /// <summary>The decision stopped before every limit agreed on one time (they may never agree).</summary>
    public bool Unsettled { get; init; }

    public static readonly PacingDecision Go = new(null, false);
}

/// <summary>The earliest time a message may go, why, and whether it holds the whole line or only this message.</summary>
public sealed record PacingHold(DateTimeOffset NotBefore, string Reason, bool LineWide = true);
