using LineAgent.Storage;

namespace LineAgent.Tests.Storage;

/// <summary>Prefixed ULIDs: time first (sortable), then 80 random bits, in Crockford's base 32.</summary>
public sealed class IdsTests
{
    private const string Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    [Test]
    public void New_ShouldBeUniqueAndSortableByTime()
    {
        var at = DateTimeOffset.Parse("2026-12-05T15:00:00Z");
        var ids = Enumerable.Range(0, 20_000).Select(i => Ids.New("msg", at.AddMilliseconds(i / 100))).ToList();
        Assert.That(ids.Distinct().Count(), Is.EqualTo(ids.Count));
        Assert.That(ids.All(id => id.Length == 30 && id.StartsWith("msg_") && id[4..].All(Alphabet.Contains)), Is.True);
        var byTime = ids.Select(id => id[4..14]).ToList();
        Assert.That(byTime, Is.Ordered.Using<string>(StringComparer.Ordinal));
    }

    [Test]
    public void New_ShouldBeUniqueAcrossThreadsAndPoolRefills()
    {
        // 8 threads x 5,000 ids in the same millisecond: 40,000 ids take 640,000 random bytes, about 156 refills of the
        // 4 KiB pool. Bytes handed out twice (a race on the pool, a refill that repeats) would repeat an id.
        var at = DateTimeOffset.Parse("2026-12-05T15:00:00Z");
        var ids = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            for (var i = 0; i < 5_000; i++)
                ids.Add(Ids.New("msg", at));
        });
        Assert.That(ids, Has.Count.EqualTo(40_000));
        Assert.That(ids.Distinct().Count(), Is.EqualTo(40_000));
        // Random characters spread evenly: each of the 32 values is 1/32 of all 640,000 (20,000 +- 5 %).
        var counts = ids.SelectMany(id => id[14..]).GroupBy(c => c).ToDictionary(g => g.Key, g => g.Count());
        Assert.That(counts, Has.Count.EqualTo(32));
        Assert.That(counts.Values, Is.All.InRange(19_000, 21_000));
    }

    [Test]
    public void New_ShouldTakeEveryValueInEveryRandomPosition()
    {
        // Each of the 16 random characters must take all 32 values (2,000 ids: a missing one is ~1e-26). A source with
        // a fixed part (a version-4 GUID's version nibble, taken as is) makes one position take only 0-F.
        var seen = Enumerable.Range(0, 16).Select(_ => new HashSet<char>()).ToArray();
        for (var n = 0; n < 2_000; n++)
        {
            var id = Ids.New("x", DateTimeOffset.UnixEpoch);
            for (var i = 0; i < 16; i++)
                seen[i].Add(id[12 + i]);
        }
        Assert.That(seen.Select(s => s.Count), Is.All.EqualTo(32));
    }
}
