namespace LineAgent.Messages;

/// <summary>
/// In-process news of message changes, raised after they are committed: lets a send-now request
/// wait for its outcome and lets webhooks and the dispatcher react without polling.
/// </summary>
public sealed class MessageNotifier
{
    public event Action<MessageRow>? Changed;

    public void Publish(MessageRow row) => Changed?.Invoke(row);

    /// <summary>
    /// Waits until <paramref name="read"/> (called after subscribing, so no change is missed) or a
    /// later change of message <paramref name="id"/> satisfies <paramref name="done"/>, or the timeout passes.
    /// Returns the last state seen.
    /// </summary>
    public async Task<MessageRow> WaitAsync(
        string id, Func<Task<MessageRow>> read, Func<MessageRow, bool> done, TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        var tcs = new TaskCompletionSource<MessageRow>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(MessageRow row)
        {
            if (row.Id != id) return;
            if (done(row)) tcs.TrySetResult(row);
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
