using LineAgent.Storage;

namespace LineAgent.Tests.Storage;

/// <summary>The outbox's own threads for blocking file work: jobs run at once up to the limit, and their errors come back.</summary>
public sealed class BlockingFileWorkTests
{
    [Test]
    public async Task Jobs_ShouldRunAtOnce_UpToTheLimit_OnThreadsOfTheirOwn()
    {
        using var work = new BlockingFileWork("test files", 4);
        using var allIn = new CountdownEvent(4);
        // Each job waits until all four are running: they can finish only if four threads run them at once.
        var jobs = Enumerable.Range(0, 4).Select(i => work.RunAsync(() =>
        {
            allIn.Signal();
            if (!allIn.Wait(TimeSpan.FromSeconds(30)))
                throw new TimeoutException("the four jobs did not run at once");
            return (i, Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name);
        })).ToList();

        var done = await Task.WhenAll(jobs);

        Assert.That(done.Select(d => d.i), Is.EqualTo(new[] { 0, 1, 2, 3 }));
        Assert.That(done.Select(d => d.IsThreadPoolThread), Has.All.False);
        Assert.That(done.Select(d => d.Name), Has.All.StartWith("test files"));
        Assert.That(work.Threads, Is.EqualTo(4));

        // More jobs than threads: they queue; no thread is added beyond the limit.
        var more = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => work.RunAsync(() => i * 2)));
        Assert.That(more, Is.EqualTo(Enumerable.Range(0, 40).Select(i => i * 2)));
        Assert.That(work.Threads, Is.EqualTo(4));
    }

    /// <summary>
    /// The agent stopping disposes the channel, and with it these threads, while a send may still be on its way to them:
    /// its file must still be written (a refused job surfaced as an unexpected error: "may have been sent", never retried).
    /// </summary>
    [Test]
    public async Task AJobGivenAfterDispose_ShouldStillBeDone()
    {
        var work = new BlockingFileWork("test files", 2);
        Assert.That(await work.RunAsync(() => 1), Is.EqualTo(1));
        work.Dispose();

        var file = Path.Combine(Path.GetTempPath(), $"blocking-file-work-{Guid.NewGuid():N}");
        try
        {
            var done = await work.RunAsync(() => { File.WriteAllText(file, "sent"); return true; });
            Assert.That(done, Is.True);
            Assert.That(File.ReadAllText(file), Is.EqualTo("sent"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void AJobsException_ShouldBeItsTasks_AndTheThreadGoesOn()
    {
        using var work = new BlockingFileWork("test files", 1);

        var failed = Assert.ThrowsAsync<IOException>(() => work.RunAsync<bool>(() => throw new IOException("No space left on device")));
        Assert.That(failed!.Message, Is.EqualTo("No space left on device"));
        Assert.That(work.RunAsync(() => 42).Result, Is.EqualTo(42));
        Assert.That(work.Threads, Is.EqualTo(1));
    }
}
