using Dapper;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// A deferrable unit (the outcome of a send that already went out) waits up to the writer's deferral for a unit that
/// cannot wait and shares its commit: one synced commit instead of two. It never waits longer, and never past a stop.
/// </summary>
public sealed class DeferredCommitTests : MigratedDatabaseTest
{
    private static Func<WriteScope, int> Insert(string key) => s =>
        s.Connection.Execute("INSERT INTO bridge_state (key, value) VALUES (@Key, 'v')", new { Key = key }, s.Transaction);

    private async Task<long> RowsAsync()
    {
        await using var c = await Db.OpenAsync();
        return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM bridge_state WHERE key LIKE 'deferred-test-%'");
    }

    [Test]
    public async Task ADeferrableUnit_ShouldBeCommittedWithTheNextUnitThatCannotWait()
    {
        // A deferral far longer than the test: the deferrable unit can only be committed by the urgent unit's commit.
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, deferFor: TimeSpan.FromHours(1));
        var deferred = writer.WriteDeferrableAsync(Insert("deferred-test-outcome"));
        await Eventually.TrueAsync(() => writer.Deferring == 1, "the writer holds the deferrable unit back");
        Assert.That(deferred.IsCompleted, Is.False);
        Assert.That(await RowsAsync(), Is.Zero, "not committed while it waits");

        await writer.WriteAsync(Insert("deferred-test-claim"));

        Assert.That(deferred.IsCompletedSuccessfully, Is.True, "committed with the claim, completed before it");
        Assert.That(writer.Counters, Is.EqualTo((1L, 2L)), "one commit for both");
        Assert.That(await RowsAsync(), Is.EqualTo(2));
    }

    [Test]
    public async Task AUnitThatMustRunAlone_ShouldEndTheWait_AndBeCommittedOnItsOwn()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, deferFor: TimeSpan.FromHours(1));
        var deferred = writer.WriteDeferrableAsync(Insert("deferred-test-outcome"));
        await Eventually.TrueAsync(() => writer.Deferring == 1, "the writer holds the deferrable unit back");

        await writer.WriteAsync(Insert("deferred-test-bulk"), alone: true);

        Assert.That(deferred.IsCompletedSuccessfully, Is.True, "committed first, without the lone unit");
        Assert.That(writer.Counters, Is.EqualTo((2L, 2L)), "two commits: the lone unit has a transaction of its own");
        Assert.That(await RowsAsync(), Is.EqualTo(2));
    }

    [Test]
    public void ADeferralOutsideZeroToADay_ShouldBeRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new DbWriter(Db, NullLogger<DbWriter>.Instance, deferFor: TimeSpan.FromDays(30)));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new DbWriter(Db, NullLogger<DbWriter>.Instance, deferFor: TimeSpan.FromMilliseconds(-1)));
    }

    [Test]
    public async Task ADeferrableUnitAlone_ShouldBeCommittedWhenTheDeferralEnds()
    {
        await using var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, deferFor: TimeSpan.FromMilliseconds(50));
        var deferred = writer.WriteDeferrableAsync(Insert("deferred-test-alone"));

        Assert.That(await deferred.WaitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(1));
        Assert.That(await RowsAsync(), Is.EqualTo(1));
        Assert.That(writer.Counters, Is.EqualTo((1L, 1L)));
    }

    [Test]
    public async Task StoppingTheWriter_ShouldCommitADeferrableUnitAtOnce()
    {
        var writer = new DbWriter(Db, NullLogger<DbWriter>.Instance, deferFor: TimeSpan.FromHours(1));
        var deferred = writer.WriteDeferrableAsync(Insert("deferred-test-at-stop"));
        await Eventually.TrueAsync(() => writer.Deferring == 1, "the writer holds the deferrable unit back");

        await writer.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.That(deferred.IsCompletedSuccessfully, Is.True);
        Assert.That(await RowsAsync(), Is.EqualTo(1));
    }
}
