using System.Collections.Concurrent;

namespace LineAgent.Storage;

/// <summary>
/// Threads of their own for file work that blocks in the kernel (a file written and fsynced, then renamed), so that
/// several such jobs run at once without holding thread-pool threads. On a small machine the thread pool starts with
/// one worker per core and adds more only slowly while they are blocked: 1,000 outbox files, 16 at a time, took
/// 145-545 ms through the pool (more the colder it was) and 87-117 ms on 16 threads of their own (a standalone
/// program on the 2-core build machine, five rounds each, README Performance). All <c>threads</c> start at the first job
/// and stay until <see cref="Dispose"/> (idle, they cost a blocked wait and their stacks). A job given after that runs on
/// the caller's thread: it is still done, so a send in flight while the agent stops is not refused half-way.
/// </summary>
public sealed class BlockingFileWork(string name, int threads) : IDisposable
{
    private readonly BlockingCollection<Action> _jobs = new();
    private readonly object _start = new();
    private int _threads;

    /// <summary>Threads started so far (a test hook).</summary>
    public int Threads => Volatile.Read(ref _threads);

    /// <summary>Runs <paramref name="work"/> on one of the threads; its exception, if any, is the task's.</summary>
    public Task<T> RunAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Job()
        {
            try
            {
                done.TrySetResult(work());
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        }
        StartThreads();
        try
        {
            _jobs.Add(Job);
        }
        catch (InvalidOperationException) when (_jobs.IsAddingCompleted)
        {
            Job(); // disposed (the agent is stopping): done here rather than refused
        }
        return done.Task;
    }

    private void StartThreads()
    {
        if (Volatile.Read(ref _threads) > 0)
            return;
        lock (_start)
        {
            for (; _threads < threads; _threads++)
                new Thread(Run) { Name = $"{name} {_threads + 1}", IsBackground = true }.Start();
        }
    }

    private void Run()
    {
        // After Dispose the jobs already given are still taken; then TryTake answers false.
        while (_jobs.TryTake(out var job, Timeout.Infinite))
            job();
    }

    public void Dispose()
    {
        _jobs.CompleteAdding();
    }
}
