using System.Collections.Concurrent;

namespace LineAgent.Storage;

/// <summary>
/// Threads of their own for file work that blocks in the kernel (a file written and fsynced, then renamed), so that
/// several such jobs run at once without holding thread-pool threads. On a small machine the thread pool starts with
/// one worker per core and adds more only slowly while they are blocked: 1,000 outbox files, 16 at a time, took
/// 145-545 ms through the pool (more the colder it was) and 87-117 ms on 16 threads of their own (a standalone
/// program on the 2-core build machine, five rounds each, README Performance). The threads start on first use, one per
/// job running at once up to <c>threads</c>, and stay (idle, they cost a blocked wait and their stacks).
/// </summary>
public sealed class BlockingFileWork(string name, int threads) : IDisposable
{
    private readonly BlockingCollection<Action> _jobs = new();
    private readonly object _start = new();
    private int _threads;
    private int _waiting;

    /// <summary>Threads started so far (a test hook).</summary>
    public int Threads => Volatile.Read(ref _threads);

    /// <summary>Runs <paramref name="work"/> on one of the threads; its exception, if any, is the task's.</summary>
    public Task<T> RunAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        EnsureThread();
        _jobs.Add(() =>
        {
            try
            {
                done.TrySetResult(work());
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        });
        return done.Task;
    }

    /// <summary>A thread more when none is waiting for a job and fewer than the most have started.</summary>
    private void EnsureThread()
    {
        if (Volatile.Read(ref _waiting) > _jobs.Count || Volatile.Read(ref _threads) >= threads)
            return;
        lock (_start)
        {
            if (_threads >= threads)
                return;
            _threads++;
            new Thread(Run) { Name = $"{name} {_threads}", IsBackground = true }.Start();
        }
    }

    private void Run()
    {
        while (true)
        {
            Interlocked.Increment(ref _waiting);
            Action job;
            try
            {
                if (!_jobs.TryTake(out job!, Timeout.Infinite))
                    return; // disposed
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }
            job();
        }
    }

    public void Dispose()
    {
        _jobs.CompleteAdding();
    }
}
