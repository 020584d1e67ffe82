using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The watch that stops an agent whose database was deleted under it: at once after a write the writer refused, at its
/// next check while nothing is written, and never for one stat that failed once.
/// </summary>
public sealed class DataDirWatchTests : MigratedDatabaseTest
{
    private static readonly DateTimeOffset Start = new(2026, 12, 8, 2, 0, 0, TimeSpan.Zero);

    private sealed class Lifetime : IHostApplicationLifetime
    {
        private readonly CancellationTokenSource _stopping = new();
        public CancellationToken ApplicationStarted => CancellationToken.None;
        public CancellationToken ApplicationStopping => _stopping.Token;
        public CancellationToken ApplicationStopped => CancellationToken.None;
        public bool StopRequested => _stopping.IsCancellationRequested;
        public void StopApplication() => _stopping.Cancel();
    }

    private async Task WithWatchAsync(Func<DataDirWatch, DatabasePresence, FakeTimeProvider, Lifetime, AgentExit, Task> test)
    {
        var time = new FakeTimeProvider(Start);
        var presence = Db.Presence;
        var lifetime = new Lifetime();
        var exit = new AgentExit();
        var watch = new DataDirWatch(presence, exit, lifetime, time, NullLogger<DataDirWatch>.Instance);
        await watch.StartAsync(CancellationToken.None);
        try
        {
            Assert.That(await Eventually.ValueAsync(() => watch.SleepingUntil, "the first check"), Is.EqualTo(Start + DataDirWatch.Every));
            await test(watch, presence, time, lifetime, exit);
        }
        finally
        {
            await watch.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public Task AWriteRefusedForADeletedDatabase_ShouldWakeTheWatch_WhichStopsTheAgentOneRecheckLater() =>
        WithWatchAsync(async (watch, presence, time, lifetime, exit) =>
        {
            DatabaseFile.DeleteWithCompanions(Db.Path);
            Assert.Throws<DatabaseGoneException>(presence.EnsureThere); // what the writer does before a commit

            // No time has passed: the refusal woke it (a first miss), and it looks again one recheck later.
            await Eventually.TrueAsync(() => watch.SleepingUntil == Start + DataDirWatch.Recheck, "woken by the refusal, a recheck ahead");
            Assert.That(lifetime.StopRequested, Is.False, "one miss is not a deletion");
            time.Advance(DataDirWatch.Recheck);
            await Eventually.TrueAsync(() => lifetime.StopRequested, "the agent stops at the second miss");
            Assert.That(exit.Code, Is.EqualTo(AgentExit.DatabaseGone));
        });

    /// <summary>Review: two refused writes microseconds apart (a load) counted as two misses, so one failed stat stopped the agent.</summary>
    [Test]
    public Task TwoRefusalsWithinTheRecheck_ShouldCountAsOneMiss() =>
        WithWatchAsync(async (watch, presence, time, lifetime, _) =>
        {
            DatabaseFile.DeleteWithCompanions(Db.Path);
            Assert.Throws<DatabaseGoneException>(presence.EnsureThere);
            await Eventually.TrueAsync(() => watch.SleepingUntil == Start + DataDirWatch.Recheck, "woken by the first refusal");
            time.Advance(TimeSpan.FromMilliseconds(10));
            Assert.Throws<DatabaseGoneException>(presence.EnsureThere);
            await Eventually.TrueAsync(() => watch.SleepingUntil == Start + DataDirWatch.Recheck && !lifetime.StopRequested, "the second look still waits for the recheck");
            Assert.That(lifetime.StopRequested, Is.False);
            time.Advance(DataDirWatch.Recheck);
            await Eventually.TrueAsync(() => lifetime.StopRequested, "stopped at the recheck");
        });

    [Test]
    public Task ADatabaseDeletedWhileNothingIsWritten_ShouldStopTheAgentAtTheNextCheckAndARecheck() =>
        WithWatchAsync(async (watch, _, time, lifetime, exit) =>
        {
            DatabaseFile.DeleteWithCompanions(Db.Path);
            time.Advance(DataDirWatch.Every);
            await Eventually.TrueAsync(() => watch.SleepingUntil == Start + DataDirWatch.Every + DataDirWatch.Recheck, "a first miss");
            Assert.That(lifetime.StopRequested, Is.False);
            time.Advance(DataDirWatch.Recheck);
            await Eventually.TrueAsync(() => lifetime.StopRequested, "the agent stops at the second miss");
            Assert.That(exit.Code, Is.EqualTo(AgentExit.DatabaseGone));
        });

    [Test]
    public Task OneMissFollowedByTheDatabaseFoundAgain_ShouldNotStopTheAgent() =>
        WithWatchAsync(async (watch, _, time, lifetime, exit) =>
        {
            var aside = Db.Path + ".aside";
            File.Move(Db.Path, aside); // a stat that fails once (a network volume) looks the same
            time.Advance(DataDirWatch.Every);
            await Eventually.TrueAsync(() => watch.SleepingUntil == Start + DataDirWatch.Every + DataDirWatch.Recheck, "a first miss");
            File.Move(aside, Db.Path);
            time.Advance(DataDirWatch.Recheck);
            await Eventually.TrueAsync(() => watch.SleepingUntil == Start + DataDirWatch.Every * 2 + DataDirWatch.Recheck, "found again, the usual check next");
            Assert.That(lifetime.StopRequested, Is.False);
            Assert.That(exit.Code, Is.Zero);
        });
}
