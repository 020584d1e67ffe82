namespace LineAgent.Messages;

/// <summary>A committed change of one message: the row as it now stands and the transition that made it.</summary>
public sealed record MessageChange(MessageRow Row, string Transition);

/// <summary>
/// In-process news of message changes, raised after they are committed: lets a send-now request wait for
/// its outcome and lets the workers react without polling. Each change says what changed (the row, its
/// line, due time and status, the transition), so a listener wakes only for what concerns it.
/// </summary>
public sealed class MessageNotifier
{
    public event Action<MessageChange>? Changed;

    public void Publish(MessageChange change) => Changed?.Invoke(change);

    /// <summary>
    /// Waits until <paramref name="read"/> (called after subscribing, so no change is missed) or a
    /// later change of message <paramref name="id"/> satisfies <paramref name="done"/>, or the timeout passes.
    /// Returns the last state seen.
    /// </summary>
    public async Task<MessageRow> WaitAsync(
        string id, Func<Task<MessageRow>> read, Func<MessageRow, bool> done, TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        var tcs = new TaskCompletionSource<MessageRow>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(MessageChange change)
        {
            if (change.Row.Id == id && done(change.Row))
                tcs.TrySetResult(change.Row);
        }
        Changed += OnChanged;
        try
        {
            var current = await read();
            if (done(current)) return current;
            try
            {
                return await tcs.Task.WaitAsync(timeout, time, ct);
            }
            catch (TimeoutException)
            {
                return await read();
            }
        }
        finally
        {
            Changed -= OnChanged;
        }
    }
}
