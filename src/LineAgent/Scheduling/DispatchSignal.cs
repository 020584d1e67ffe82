using System.Collections.Concurrent;

namespace LineAgent.Scheduling;

/// <summary>
/// Wakes a line's worker when something changed (new message, cancel, reschedule, line resumed).
/// Take <see cref="Next"/> before reading the database, so a change made in between is never missed.
/// </summary>
public sealed class DispatchSignal
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _signals = new();

    public Task Next(string lineId) => _signals.GetOrAdd(lineId, _ => NewSource()).Task;

    public void Notify(string lineId)
    {
        if (_signals.TryRemove(lineId, out var tcs))
            tcs.TrySetResult();
    }

    public void NotifyAll()
    {
        foreach (var lineId in _signals.Keys)
            Notify(lineId);
    }

    private static TaskCompletionSource NewSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
