using LineAgent.Messages;

namespace LineAgent.Tests.Sequences;

/// <summary>followUps[].after: ISO 8601 durations of fixed length, and a reason that fits what was written when not.</summary>
public sealed class DurationsTests
{
    [TestCase("P2D", 2 * 24 * 60)]
    [TestCase("pt4h", 4 * 60)]
    [TestCase("P1DT12H", 36 * 60)]
    [TestCase("PT1M", 1)]
    [TestCase("P1W", 7 * 24 * 60)]
    public void ADuration_ShouldParseToItsExactLength(string text, int minutes)
    {
        Assert.That(Durations.TryParse(text, out var value, out var problem), Is.True, problem);
        Assert.That(value, Is.EqualTo(TimeSpan.FromMinutes(minutes)));
    }

    [TestCase("P1Y", "uses years or months")]
    [TestCase("P2M", "uses years or months")]
    [TestCase("P1Y2M3D", "uses years or months")]
    [TestCase("2 days", "is not an ISO 8601 duration")]
    [TestCase("MONDAY", "is not an ISO 8601 duration")]
    [TestCase("P", "is not an ISO 8601 duration")]
    [TestCase("PT0S", "longer than zero")]
    [TestCase("P400D", "at most 366 days")]
    public void ABadDuration_ShouldSayWhatIsWrongWithIt(string text, string reason)
    {
        Assert.That(Durations.TryParse(text, out _, out var problem), Is.False);
        Assert.That(problem, Does.Contain(reason).And.Contain($"'{text}'"));
    }
}
