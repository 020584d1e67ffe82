using LineAgent.Lines;
using LineAgent.Scheduling;

namespace LineAgent.Tests.Scheduling;

/// <summary>When a window (HH:mm to HH:mm in a zone) next opens, and when two windows are first open together.</summary>
public sealed class SendWindowTests
{
    private static readonly TimeZoneInfo NewYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
    private static readonly TimeZoneInfo Sydney = TimeZoneInfo.FindSystemTimeZoneById("Australia/Sydney");

    private static SendWindowOptions W(string from, string to) => new() { From = from, To = to };

    private static DateTimeOffset Utc(int month, int day, int hour, int minute = 0, int year = 2027) => new(year, month, day, hour, minute, 0, TimeSpan.Zero);

    [Test]
    public void NextOpen_InTheRepeatedHourOfAFallBackNight_ShouldBeTheSecondOccurrence()
    {
        // 7 November 2027, New York: 01:00-02:00 happens twice (EDT until 06:00Z, then EST). 06:10Z is 01:10 EST.
        var window = W("01:30", "01:45");
        Assert.That(SendWindow.NextOpen(window, NewYork, Utc(11, 7, 5, 10)), Is.EqualTo(Utc(11, 7, 5, 30)), "01:30 EDT");
        Assert.That(SendWindow.NextOpen(window, NewYork, Utc(11, 7, 6, 10)), Is.EqualTo(Utc(11, 7, 6, 30)), "01:30 EST, not the next day");
        Assert.That(SendWindow.NextOpen(window, NewYork, Utc(11, 7, 6, 50)), Is.EqualTo(Utc(11, 8, 6, 30)), "past both: the next day's");
    }

    [Test]
    public void NextOpen_OfAnOvernightWindow_ShouldBeOpenAfterMidnight()
    {
        var window = W("22:00", "06:00");
        var twoAmNewYork = Utc(12, 10, 7);
        Assert.That(SendWindow.NextOpen(window, NewYork, twoAmNewYork), Is.EqualTo(twoAmNewYork));
        Assert.That(SendWindow.NextOpen(window, NewYork, Utc(12, 10, 12)), Is.EqualTo(Utc(12, 11, 3)), "22:00 EST");
    }

    [Test]
    public void FirstOpenInBoth_ShouldFindTheOverlap_OrSayThereIsNone()
    {
        var line = W("08:00", "21:00");
        var start = Utc(12, 10, 12, year: 2026);
        // Sydney 19:00-20:00 (AEDT) is 08:00-09:00 UTC: the next morning.
        Assert.That(SendWindow.FirstOpenInBoth(line, TimeZoneInfo.Utc, W("19:00", "20:00"), Sydney, start, TimeSpan.FromDays(14)),
            Is.EqualTo(Utc(12, 11, 8, year: 2026)));
        // Sydney 09:00-10:00 is 22:00-23:00 UTC: never inside 08:00-21:00 UTC.
        Assert.That(SendWindow.FirstOpenInBoth(line, TimeZoneInfo.Utc, W("09:00", "10:00"), Sydney, start, TimeSpan.FromDays(14)), Is.Null);
        // Overnight on both sides, and a window with no hours (always open).
        Assert.That(SendWindow.FirstOpenInBoth(W("22:00", "02:00"), TimeZoneInfo.Utc, W("01:00", "03:00"), TimeZoneInfo.Utc, start, TimeSpan.FromDays(14)),
            Is.EqualTo(Utc(12, 11, 1, year: 2026)));
        Assert.That(SendWindow.FirstOpenInBoth(new SendWindowOptions(), TimeZoneInfo.Utc, W("09:00", "10:00"), Sydney, start, TimeSpan.FromDays(14)),
            Is.EqualTo(Utc(12, 10, 22, year: 2026)));
    }
}
