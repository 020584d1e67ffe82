namespace LineAgent.Channels;

/// <summary>How a view (GET /api/status, /api/lines) waits for a health check that may be in flight already.</summary>
public static class HealthWait
{
    /// <summary>
    /// The check's answer if it comes within <paramref name="wait"/> of the check's start (<paramref name="since"/>: one answer
    /// that asks several times waits that long in all), else null; the check goes on. A check that failed throws.
    /// </summary>
    public static async Task<T?> WithinAsync<T>(Task<T> check, DateTimeOffset since, TimeSpan wait, TimeProvider time, CancellationToken ct)
        where T : class
    {
        var left = wait - (time.GetUtcNow() - since);
        try
        {
            if (check.IsCompleted || left > TimeSpan.Zero)
                return await check.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, time, ct);
        }
        catch (TimeoutException)
        {
        }
        return check.IsCompletedSuccessfully ? check.Result : null;
    }
}
