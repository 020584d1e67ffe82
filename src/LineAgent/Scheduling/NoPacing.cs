using LineAgent.Lines;
using LineAgent.Messages;

namespace LineAgent.Scheduling;

/// <summary>Sends as soon as a message is due.</summary>
public sealed class NoPacing : IPacer, ILineUsage
{
    public Task<PacingHold?> CheckAsync(LineOptions line, MessageRow message, DateTimeOffset now, CancellationToken ct) =>
        Task.FromResult<PacingHold?>(null);

    public void Record(LineOptions line, MessageRow message, DateTimeOffset at) { }

    public Task<object?> TodayAsync(LineOptions line, CancellationToken ct) => Task.FromResult<object?>(null);
}
