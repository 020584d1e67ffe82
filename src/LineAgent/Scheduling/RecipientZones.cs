using System.Collections.Concurrent;
using LineAgent.Lines;
using LineAgent.Messages;
using PhoneNumbers;

namespace LineAgent.Scheduling;

/// <summary>The recipient's time zone and where it came from.</summary>
public sealed record RecipientZone(TimeZoneInfo Zone, string Source);

/// <summary>
/// The recipient's own time zone: from the phone number (libphonenumber's time-zone mapper) when the number maps
/// to one zone, else the lead's <c>fields.timeZone</c>, else the line's. Several zones that keep the same clock all
/// year (Europe/London, Europe/Jersey, ...) count as one; zones that differ (+1 208: Boise and Los Angeles) do not.
/// </summary>
public static class RecipientZones
{
    public const string FromNumber = "number";
    public const string FromLead = "lead";
    public const string FromLine = "line";

    private static readonly PhoneNumberUtil Phones = PhoneNumberUtil.GetInstance();
    private static readonly ConcurrentDictionary<string, string?> ByZoneSet = new();
    private static PhoneNumberToTimeZonesMapper Mapper => PhoneNumberToTimeZonesMapper.GetInstance();

    public static RecipientZone Resolve(string? phone, string? leadTimeZone, LineOptions line)
    {
        if (FromPhone(phone) is { } byNumber && Schedules.TryFindZone(byNumber, out var z1))
            return new RecipientZone(z1!, FromNumber);
        if (!string.IsNullOrWhiteSpace(leadTimeZone) && Schedules.TryFindZone(leadTimeZone.Trim(), out var z2))
            return new RecipientZone(z2!, FromLead);
        return new RecipientZone(SendWindow.Zone(line.Pacing.Window), FromLine);
    }

    /// <summary>The IANA zone of an E.164 number, or null when it maps to none or to zones that differ.</summary>
    public static string? FromPhone(string? e164)
    {
        if (string.IsNullOrWhiteSpace(e164))
            return null;
        IList<string> zones;
        try
        {
            zones = Mapper.GetTimeZonesForNumber(Phones.Parse(e164, null));
        }
        catch (NumberParseException)
        {
            return null;
        }
        var known = zones.Where(z => z != Mapper.GetUnknownTimeZone() && Schedules.TryFindZone(z, out _)).ToList();
        if (known.Count == 0)
            return null;
        return known.Count == 1 ? known[0] : ByZoneSet.GetOrAdd(string.Join(",", known), _ => SameClock(known) ? Preferred(known) : null);
    }

    /// <summary>The lead's own zone: a field named timeZone (any case or punctuation: time_zone, TimeZone, tz).</summary>
    public static string? LeadZone(IReadOnlyDictionary<string, string>? fields)
    {
        if (fields is null)
            return null;
        foreach (var (key, value) in fields)
        {
            var k = new string(key.Where(char.IsLetterOrDigit).ToArray()).ToLowerInvariant();
            if (k is "timezone" or "tz" && !string.IsNullOrWhiteSpace(value))
                return value.Trim();
        }
        return null;
    }

    private static string Preferred(List<string> zones) =>
        zones.FirstOrDefault(z => z is "Europe/London" or "Australia/Sydney" or "America/New_York") ?? zones.Order(StringComparer.Ordinal).First();

    /// <summary>The zones keep the same UTC offset at every sampled moment of two years (DST dates included).</summary>
    private static bool SameClock(List<string> ids)
    {
        var zones = ids.Select(id => { Schedules.TryFindZone(id, out var z); return z!; }).ToList();
        var start = new DateTimeOffset(DateTime.UtcNow.Year, 1, 1, 0, 0, 0, TimeSpan.Zero);
        for (var t = start; t < start.AddYears(2); t = t.AddHours(6))
        {
            var offset = zones[0].GetUtcOffset(t);
            if (zones.Any(z => z.GetUtcOffset(t) != offset))
                return false;
        }
        return true;
    }
}
