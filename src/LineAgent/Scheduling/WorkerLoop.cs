namespace LineAgent.Scheduling;

/// <summary>
/// The one way a background worker waits: until a time, or until woken, whichever comes first. A wake that
/// arrives while the worker is busy is remembered, so the next sleep returns at once: a change committed
/// between the worker's read and its sleep is never missed.
/// </summary>
public sealed class Wakeup(TimeProvider time)
{
    /// <summary>
    /// The longest single timer: Task.Delay refuses more than about 49.7 days (uint milliseconds), which a worker may
    /// ask for (Storage:BackupEvery of 60 days). A longer sleep wakes after this and its worker's pass runs early.
    /// </summary>
    internal static readonly TimeSpan LongestTimer = TimeSpan.FromDays(30);

    /// <summary>
    /// How far the clock may move while a timer is armed before it is armed again: the system clock moves microseconds
    /// meanwhile, which is no lateness; any other clock (a test's fake one) must not have moved at all, or its timer
    /// would be due after the time the sleeper published.
    /// </summary>
    private readonly TimeSpan _armingSlack = time == TimeProvider.System ? TimeSpan.FromMilliseconds(1) : TimeSpan.Zero;

    private readonly Lock _gate = new();
    private TaskCompletionSource? _sleeping;
    private DateTimeOffset? _until;
    private bool _pending;

    /// <summary>While asleep: the time the worker wakes at unless woken. Null while it works.</summary>
    public DateTimeOffset? SleepingUntil
    {
        get { lock (_gate) return _until; }
    }

    /// <summary>Wake now; while busy, the next sleep returns at once.</summary>
    public void Wake()
    {
        lock (_gate)
        {
            if (_sleeping is not null)
                _sleeping.TrySetResult();
            else
                _pending = true;
        }
    }

    /// <summary>Something needs the worker at <paramref name="at"/>: wake it only if it sleeps past then.</summary>
    public void WakeBy(DateTimeOffset at)
    {
        lock (_gate)
        {
            if (_sleeping is null)
                _pending = true;
            else if (at < _until)
                _sleeping.TrySetResult();
        }
    }

    /// <summary>
    /// Sleeps until <paramref name="until"/> or a wake. <see cref="SleepingUntil"/> is published only once the timer
    /// is armed, so whoever sees it and moves the clock there (a test's FakeTimeProvider) always fires it. A timer
    /// is armed for a duration from the clock's time at that moment; if the clock moved while it was being armed,
    /// it is armed again, so it never fires later than <paramref name="until"/>. The timer is armed outside the
    /// gate (a fake clock may run other timers' callbacks in the arming thread); a wake in the meantime is pending.
    /// </summary>
    public async Task SleepAsync(DateTimeOffset until, CancellationToken ct)
    {
        lock (_gate)
        {
            if (_pending)
            {
                _pending = false;
                return;
            }
        }
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task delay;
        // A clock that moves on every read (a fake one that advances itself) is taken as it is after a few tries.
        for (var tries = 1; ; tries++)
        {
            var now = time.GetUtcNow();
            var wait = until - now;
            if (wait <= TimeSpan.Zero)
            {
                cts.Dispose();
                return;
            }
            delay = Task.Delay(wait < LongestTimer ? wait : LongestTimer, time, cts.Token);
            if (time.GetUtcNow() - now <= _armingSlack || tries == 4)
                break;
            cts.Cancel();
            cts.Dispose();
            cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        }
        TaskCompletionSource woken;
        lock (_gate)
        {
            if (_pending)
            {
                _pending = false;
                cts.Cancel();
                cts.Dispose();
                return;
            }
            woken = _sleeping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _until = until;
        }
        try
        {
            await Task.WhenAny(woken.Task, delay);
        }
        finally
        {
            lock (_gate)
            {
                _sleeping = null;
                _until = null;
            }
            cts.Cancel();
            cts.Dispose();
        }
        ct.ThrowIfCancellationRequested();
    }
}

/// <summary>
/// The loop every background worker runs: one pass, then sleep until the time the pass asked for or a wake,
/// whichever is first. A pass that throws is logged and tried again after <paramref name="retryAfterError"/>;
/// only cancellation ends the loop.
/// </summary>
public static class WorkerLoops
{
    public static async Task RunAsync(string name, Func<CancellationToken, Task<DateTimeOffset>> pass, Wakeup wakeup, TimeProvider time,
        ILogger log, TimeSpan retryAfterError, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            DateTimeOffset next;
            try
            {
                next = await pass(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                log.LogError(e, "{Worker}: pass failed; again in {Delay}", name, retryAfterError);
                next = time.GetUtcNow() + retryAfterError;
            }
            try
            {
                await wakeup.SleepAsync(next, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }
}

/// <summary>A background worker that is one <see cref="WorkerLoops"/> loop with its own <see cref="Wakeup"/>.</summary>
public abstract class WorkerLoop(TimeProvider time, ILogger log) : BackgroundService
{
    private readonly Wakeup _wakeup = new(time);

    /// <summary>The clock the loop sleeps by (tests move it with FakeTimeProvider).</summary>
    protected TimeProvider Clock => time;

    /// <summary>When the worker is idle: the time it wakes at unless woken. Null while it works.</summary>
    public DateTimeOffset? SleepingUntil => _wakeup.SleepingUntil;

    public void Wake() => _wakeup.Wake();

    protected void WakeBy(DateTimeOffset at) => _wakeup.WakeBy(at);

    protected virtual TimeSpan RetryAfterError => TimeSpan.FromSeconds(5);

    /// <summary>Before the first pass; false = this worker has nothing to do in this run (it ends).</summary>
    protected virtual Task<bool> StartingAsync(CancellationToken ct) => Task.FromResult(true);

    /// <summary>After the last pass (unsubscribe here).</summary>
    protected virtual void Stopped() { }

    /// <summary>One pass; returns when the next one is due at the latest.</summary>
    protected abstract Task<DateTimeOffset> PassAsync(CancellationToken ct);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await StartingAsync(stoppingToken))
            return;
        try
        {
            await WorkerLoops.RunAsync(GetType().Name, PassAsync, _wakeup, time, log, RetryAfterError, stoppingToken);
        }
        finally
        {
            Stopped();
        }
    }
}
