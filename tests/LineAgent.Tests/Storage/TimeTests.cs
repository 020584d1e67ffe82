using System.Globalization;
using System.Text.Json;
using LineAgent.Api;
using LineAgent.Storage;

namespace LineAgent.Tests.Storage;

/// <summary>Time.Iso writes its digits itself; it must write what the format string it replaced wrote, for every time.</summary>
public sealed class TimeTests
{
    private const string Format = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";

    private static IEnumerable<DateTimeOffset> Times()
    {
        yield return DateTimeOffset.MinValue;
        yield return DateTimeOffset.MaxValue; // .9999999 s: the milliseconds are cut to 999, not rounded up
        yield return new DateTimeOffset(1, 2, 3, 4, 5, 6, 7, TimeSpan.Zero); // a year under 1000, every field one digit
        yield return new DateTimeOffset(2026, 12, 31, 23, 59, 59, 999, TimeSpan.FromHours(-5)); // another day and year in UTC
        yield return new DateTimeOffset(2030, 1, 1, 0, 0, 0, 0, TimeSpan.FromHours(14)).AddTicks(9_999); // 0.9999 ms: .000
        var random = new Random(20261206);
        for (var i = 0; i < 10_000; i++)
            yield return new DateTimeOffset(random.NextInt64(DateTime.MinValue.Ticks + TimeSpan.TicksPerDay, DateTime.MaxValue.Ticks - TimeSpan.TicksPerDay),
                TimeSpan.FromMinutes(random.Next(-14 * 60, 14 * 60 + 1)));
    }

    [Test]
    public void Iso_ShouldWriteWhatTheFormatStringWrote()
    {
        foreach (var t in Times())
            Assert.That(Time.Iso(t), Is.EqualTo(t.UtcDateTime.ToString(Format, CultureInfo.InvariantCulture)), $"{t:O}");
    }

    [Test]
    public void Iso_OfMilliseconds_ShouldBeIsoOfThatTime()
    {
        Assert.That(Time.Iso(1_893_456_000_123L), Is.EqualTo("2030-01-01T00:00:00.123Z"));
        Assert.That(Time.Iso(0L), Is.EqualTo("1970-01-01T00:00:00.000Z"));
    }

    [Test]
    public void JsonAnswers_ShouldWriteTimesAsIso()
    {
        var options = new JsonSerializerOptions();
        AgentJson.Configure(options);
        foreach (var t in Times().Take(1_000))
            Assert.That(JsonSerializer.Serialize(new { At = t, Maybe = (DateTimeOffset?)t }, options),
                Is.EqualTo($"{{\"at\":\"{t.UtcDateTime.ToString(Format, CultureInfo.InvariantCulture)}\",\"maybe\":\"{t.UtcDateTime.ToString(Format, CultureInfo.InvariantCulture)}\"}}"), $"{t:O}");
    }
}
