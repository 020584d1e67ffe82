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
    public void New_ShouldTakeEveryValueInEveryRandomPosition()
    {
        // The random part comes from a version-4 GUID, whose version nibble is fixed: taken as is, one of the 16
        // characters could only be 0-F. Each position must take all 32 values (2,000 ids: a missing one is ~1e-26).
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
