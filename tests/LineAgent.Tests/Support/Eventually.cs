using System.Diagnostics;

namespace LineAgent.Tests.Support;

/// <summary>Waits for a condition with a deadline (real time), instead of sleeping and hoping.</summary>
public static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        await TrueAsync(() => Task.FromResult(condition()), what, timeout);
    }

    public static async Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        var limit = timeout ?? DefaultTimeout;
        while (!await condition())
        {
            if (deadline.Elapsed > limit)
                Assert.Fail($"Timed out after {limit.TotalSeconds:0.#} s waiting for {what}.");
            await Task.Delay(10);
        }
    }

    public static async Task<T> ValueAsync<T>(Func<T?> read, string what, TimeSpan? timeout = null) where T : struct
    {
        T? value = null;
        await TrueAsync(() => (value = read()) is not null, what, timeout);
        return value!.Value;
    }

    public static async Task<T> ValueAsync<T>(Func<Task<T?>> read, Func<T, bool> done, string what, TimeSpan? timeout = null) where T : class
    {
        T? value = null;
        await TrueAsync(async () => (value = await read()) is not null && done(value), what, timeout);
        return value!;
    }
}
