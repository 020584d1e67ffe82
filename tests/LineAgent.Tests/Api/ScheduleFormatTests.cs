using LineAgent.Messages;

namespace LineAgent.Tests.Api;

/// <summary>
/// The ISO 8601 spellings `scheduledAt`, `from` and `to` accept: API.md says inputs "may carry any offset", and ISO 8601
/// writes an offset as ±hh:mm, ±hhmm (what strftime's %z gives) or ±hh.
/// </summary>
public sealed class ScheduleFormatTests
{
    private static readonly DateTimeOffset NineUtc = new(2026, 12, 1, 9, 0, 0, TimeSpan.Zero);

    [TestCase("2026-12-01T09:00:00Z")]
    [TestCase("2026-12-01T09:00:00z")]
    [TestCase("2026-12-01T11:00:00+02:00")]
    [TestCase("2026-12-01T11:00:00+0200")]
    [TestCase("2026-12-01T11:00:00+02")]
    [TestCase("2026-12-01T11:00+0200")]
    [TestCase("2026-12-01T04:00:00-0500")]
    [TestCase("2026-12-01T04:00:00-05")]
    [TestCase("2026-12-01T14:30:00+0530")]
    [TestCase("2026-12-01T09:00:00.000+0000")]
    [TestCase("2026-12-01T09:00:00.000000000Z")]
    [TestCase("2026-12-01T11:00:00.0000000001+02:00")]
    public void TryParse_ShouldReadEveryIsoOffsetSpelling(string input)
    {
        Assert.That(Schedules.TryParse(input, null, out var at, out var problem), Is.True, problem);
        Assert.That(at.UtcDateTime, Is.EqualTo(NineUtc.UtcDateTime));
    }

    [TestCase("2026-12-01T09:00:00+2", "not an ISO 8601 time")]
    [TestCase("2026-12-01T09:00:00+020", "not an ISO 8601 time")]
    [TestCase("2026-12-01T09:00:00+02:0", "not an ISO 8601 time")]
    [TestCase("2026-12-01T09:00:00+1500", "not a valid date and time")]
    [TestCase("2026-12-01T09:00:00+0260", "not a valid date and time")]
    [TestCase("2026-12-01T09:00:00", "has no offset")]
    public void TryParse_ShouldRefuseOffsetsIsoDoesNotHave(string input, string expected)
    {
        Assert.That(Schedules.TryParse(input, null, out _, out var problem), Is.False);
        Assert.That(problem, Does.Contain(expected));
    }

    [TestCase("America/New_York", true)]
    [TestCase("US/Eastern", true)]
    [TestCase("america/new_york", true, Description = "a Mac's disk finds it in any case; so must Linux")]
    [TestCase("EUROPE/PARIS", true)]
    [TestCase("Europe/Nowhere", false)]
    [TestCase("Etc/GMT+5", true)]
    [TestCase("UTC", true)]
    [TestCase("posixrules", false)]
    [TestCase("localtime", false)]
    [TestCase("Factory", false)]
    [TestCase("right/America/New_York", false, Description = "leap seconds: 27 s off")]
    [TestCase("posix/America/New_York", false)]
    [TestCase("../zoneinfo/UTC", false)]
    [TestCase("/usr/share/zoneinfo/UTC", false)]
    [TestCase("zone.tab", false)]
    public void TryFindZone_ShouldTakeZonesOnly_NotTheOtherFilesOfTheZoneDirectory(string id, bool expected)
    {
        // .NET keeps the zones it loaded in a dictionary that ignores case: "america/new_york" was found only when an earlier
        // lookup had loaded America/New_York (review). Each case starts from nothing loaded.
        TimeZoneInfo.ClearCachedData();
        Assert.That(Schedules.TryFindZone(id, out _), Is.EqualTo(expected));
    }

    [Test]
    public void TryParse_ShouldKeep100NanosecondsOfALongerFraction_AndNotOfferATimeZoneWhereNoneIsTaken()
    {
        Assert.That(Schedules.TryParse("2026-12-01T09:00:00.123456789Z", null, out var at, out _), Is.True);
        Assert.That(at, Is.EqualTo(NineUtc.AddTicks(1_234_567)));
        Assert.That(Schedules.TryParse("2026-12-01T04:00:00.123456789", "America/New_York", out var local, out _), Is.True);
        Assert.That(local, Is.EqualTo(NineUtc.AddTicks(1_234_567)));
        Assert.That(Schedules.TryParse("2026-12-01T09:00:00.1234567Z1", null, out _, out _), Is.False);
        Assert.That(Schedules.TryParse("2026-12-01T09:00:00", null, out _, out var problem, takesTimeZone: false), Is.False);
        Assert.That(problem, Does.Not.Contain("timeZone"));
    }

    [Test]
    public void TryParse_ShouldStillTakeALocalTimeWithAZone()
    {
        Assert.That(Schedules.TryParse("2026-12-01T04:00:00", "America/New_York", out var at, out var problem), Is.True, problem);
        Assert.That(at.UtcDateTime, Is.EqualTo(NineUtc.UtcDateTime));
    }

    /// <summary>
    /// The usual UTC form is read by a short path (issue 10); every instant it reads must be the one the full reading gives.
    /// 5,000 random instants over the years 1-9998, with 0 to 7 fraction digits, against .NET's exact parse.
    /// </summary>
    [Test]
    public void TheUsualUtcForm_ShouldReadTheSameInstantAsTheFullReading()
    {
        var random = new Random(20261207);
        for (var i = 0; i < 5_000; i++)
        {
            var instant = new DateTime(random.NextInt64(DateTime.MinValue.Ticks, new DateTime(9999, 1, 1).Ticks), DateTimeKind.Utc);
            var digits = random.Next(0, 8);
            var text = instant.ToString("yyyy-MM-dd'T'HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)
                + (digits == 0 ? "" : "." + instant.ToString("fffffff", System.Globalization.CultureInfo.InvariantCulture)[..digits]) + "Z";
            var expected = DateTimeOffset.ParseExact(text, "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal);
            Assert.That(Schedules.TryParse(text, null, out var at, out var problem), Is.True, $"{text}: {problem}");
            Assert.That((at, at.Offset), Is.EqualTo((expected, TimeSpan.Zero)), text);
        }
    }

    [TestCase("2026-02-29T09:00:00Z", "not a valid date and time")]
    [TestCase("2026-04-31T09:00:00Z", "not a valid date and time")]
    [TestCase("2026-12-01T24:00:00Z", "not a valid date and time")]
    [TestCase("2026-12-01T09:60:00Z", "not a valid date and time")]
    [TestCase("2026-13-01T09:00:00Z", "not a valid date and time")]
    [TestCase("0000-12-01T09:00:00Z", "not a valid date and time")]
    [TestCase("2026-12-01T09:00:00.Z", "not an ISO 8601 time")]
    [TestCase("2026-12-01T09:00:0aZ", "not an ISO 8601 time")]
    public void TheUsualUtcFormOutOfRange_ShouldBeRefusedNamingIt(string input, string expected)
    {
        Assert.That(Schedules.TryParse(input, null, out _, out var problem), Is.False);
        Assert.That(problem, Does.Contain(expected));
    }

    [Test]
    public void ALeapYearsTwentyNinthOfFebruary_ShouldBeRead() =>
        Assert.That(Schedules.TryParse("2028-02-29T23:59:59.9999999Z", null, out var at, out _) ? at : default,
            Is.EqualTo(new DateTimeOffset(2028, 2, 29, 23, 59, 59, TimeSpan.Zero).AddTicks(9_999_999)));
}
