using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Storage;

/// <summary>The directory sync after the dry-run outbox's rename (libc open + fsync; F_FULLFSYNC on a Mac).</summary>
public sealed class DirectorySyncTests
{
    [Test]
    public void AnExistingDirectory_IsSynced_AMissingOneIsAnIOExceptionNamingIt()
    {
        using var dir = new TempDir();
        Assert.DoesNotThrow(() => DirectorySync.Flush(dir.Path));
        var missing = dir.File("not-here");
        var e = Assert.Throws<IOException>(() => DirectorySync.Flush(missing));
        Assert.That(e!.Message, Does.Contain(missing).And.Contain("No such file or directory"));
    }

    [Test]
    public async Task EachFlushAfterTheLastSyncFinished_SyncsAgain_ConcurrentOnesShare()
    {
        using var dir = new TempDir();
        var sync = new SharedDirectorySync(dir.Path);
        for (var i = 0; i < 3; i++)
            await sync.FlushAsync();
        Assert.That(sync.Syncs, Is.EqualTo(3), "a rename after a finished sync is not covered by it");

        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() => sync.FlushAsync())));
        Assert.That(sync.Syncs, Is.InRange(4, 35));
    }
}
