using System.Diagnostics;

namespace LineAgent.Bench;

public sealed record LoadResult(long Requests, long Errors, double Seconds, double[] LatenciesMs, string? FirstError)
{
    /// <summary>Every request sent, warm-up included (for CPU per request over the whole run).</summary>
    public long AllRequests { get; init; }

    public double PerSecond => Requests / Seconds;

    /// <summary>Two measured windows of one target as one: their requests, errors, seconds and latencies added up.</summary>
    public LoadResult Plus(LoadResult other)
    {
        var all = LatenciesMs.Concat(other.LatenciesMs).ToArray();
        Array.Sort(all);
        return new LoadResult(Requests + other.Requests, Errors + other.Errors, Seconds + other.Seconds, all, FirstError ?? other.FirstError)
        {
            AllRequests = AllRequests + other.AllRequests,
        };
    }
}

/// <summary>N workers, each sending one request after another for the whole run; the warm-up is not counted.</summary>
public static class Load
{
    public static async Task<LoadResult> RunAsync(HttpClient client, Func<long, HttpRequestMessage> request, int workers,
        TimeSpan warmup, TimeSpan duration, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var end = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long sequence = 0, requests = 0, errors = 0;
        string? firstError = null;
        var latencies = new List<double>[workers];

        async Task Worker(int w)
        {
            var mine = latencies[w] = new List<double>(16_384);
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                var t0 = Stopwatch.GetTimestamp();
                if (t0 >= end) return;
                var counted = t0 >= measureFrom;
                var ok = false;
                string? error = null;
                try
                {
                    using var req = request(Interlocked.Increment(ref sequence));
                    using var resp = await client.SendAsync(req, HttpCompletionOption.ResponseContentRead, ct);
                    ok = resp.IsSuccessStatusCode;
                    if (!ok) error = $"HTTP {(int)resp.StatusCode}: {await resp.Content.ReadAsStringAsync(ct)}";
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
                {
                    error = e.GetType().Name + ": " + e.Message;
                }
                var t1 = Stopwatch.GetTimestamp();
                if (!counted) continue;
                Interlocked.Increment(ref requests);
                mine.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                if (!ok)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, error, null);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(() => Worker(w), ct)));
        // Requests started inside the measured window, per second of that window.
        var measured = duration.TotalSeconds;
        var all = latencies.SelectMany(l => l).ToArray();
        Array.Sort(all);
        return new LoadResult(requests, errors, measured, all, firstError) { AllRequests = Interlocked.Read(ref sequence) };
    }

    /// <summary>Runs <paramref name="count"/> jobs with at most <paramref name="workers"/> at a time.</summary>
    public static async Task ForEachAsync(int count, int workers, Func<int, Task> job, CancellationToken ct)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                ct.ThrowIfCancellationRequested();
                await job(i);
            }
        }, ct)));
    }
}

public static class Stats
{
    /// <summary>Nearest-rank percentile of sorted values.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 0) return double.NaN;
        var rank = (int)Math.Ceiling(p / 100 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }
}
