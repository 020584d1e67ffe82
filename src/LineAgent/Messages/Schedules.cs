using System.Globalization;
using System.Text.RegularExpressions;

namespace LineAgent.Messages;

/// <summary>
/// Reads `scheduledAt`: ISO 8601 with an offset (±hh:mm, ±hhmm, ±hh) or Z; or a local wall-clock time together with an
/// IANA `timeZone`, converted with that zone's rules for that date (so 09:00 stays 09:00 across DST).
/// </summary>
public static partial class Schedules
{
    // ISO 8601 allows the offset as ±hh:mm, ±hhmm (what strftime's %z writes) or ±hh; all three are read.
    // Fractions past 7 digits (100 ns, what .NET keeps) are dropped: Go's RFC3339Nano writes 9.
    [GeneratedRegex(@"^(?<local>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?)((?<=\.\d{7})\d+)?(?<offset>Z|(?<sign>[+-])(?<hh>\d{2})(:?(?<mm>\d{2}))?)?$", RegexOptions.IgnoreCase)]
    private static partial Regex Iso();

    /// <summary>
    /// `scheduledAt` with its `timeZone` from a request body, each problem under its own field: a bad zone is the
    /// timeZone's problem, and a scheduledAt that is not a time at all is named too. Null when absent or refused.
    /// </summary>
    public static DateTimeOffset? Read(string? scheduledAt, string? timeZone, List<FieldProblem> problems)
    {
        var zoneKnown = true;
        if (!string.IsNullOrWhiteSpace(timeZone) && !TryFindZone(timeZone.Trim(), out _))
        {
            zoneKnown = false;
            problems.Add(new("timeZone", "invalid_schedule", $"timeZone '{Api.Problems.Echo(timeZone)}' is not an IANA time zone such as America/New_York."));
        }
        if (string.IsNullOrWhiteSpace(scheduledAt))
            return null;
        if (zoneKnown)
        {
            if (TryParse(scheduledAt, string.IsNullOrWhiteSpace(timeZone) ? null : timeZone.Trim(), out var at, out var why))
            {
                // The last instant of year 9999 marks a follow-up waiting for its previous step: a message scheduled then
                // showed as such a follow-up (and could not be moved). No send is that far ahead.
                if (at.UtcDateTime.Year < 9999)
                    return at;
                why = $"'{Api.Problems.Echo(scheduledAt)}' is in the year 9999 or later; give a time before 9999-01-01";
            }
            problems.Add(new("scheduledAt", "invalid_schedule", $"scheduledAt {why}."));
        }
        // The zone is unknown: the time is still checked on its own (read as if in UTC), so a bad one is named beside the zone
        // (probe: 2031-13-45T10:00 with timeZone Mars/Base named only the zone).
        else if (!TryParse(scheduledAt, "UTC", out _, out var alone))
            problems.Add(new("scheduledAt", "invalid_schedule", $"scheduledAt {alone}."));
        return null;
    }

    /// <param name="takesTimeZone">Whether the caller takes a timeZone for a time without an offset (a send does; a history filter does not).</param>
    public static bool TryParse(string input, string? timeZone, out DateTimeOffset at, out string problem, bool takesTimeZone = true)
    {
        at = default;
        problem = "";
        TimeZoneInfo? zone = null;
        if (!string.IsNullOrWhiteSpace(timeZone) && !TryFindZone(timeZone, out zone))
        {
            problem = $"'{timeZone}' is not an IANA time zone such as America/New_York";
            return false;
        }
        if (TryReadUtc(input, out at))
            return true;
        var m = Iso().Match(input.Trim());
        if (!m.Success)
        {
            problem = $"'{Api.Problems.Echo(input)}' is not an ISO 8601 time such as 2026-12-01T09:00:00Z";
            return false;
        }
        var hasOffset = m.Groups["offset"].Success;
        if (hasOffset)
        {
            // One spelling for the parser: ±hh:mm (or Z).
            var normalized = m.Groups["sign"].Success
                ? $"{m.Groups["local"].Value}{m.Groups["sign"].Value}{m.Groups["hh"].Value}:{(m.Groups["mm"].Success ? m.Groups["mm"].Value : "00")}"
                : m.Groups["local"].Value + "Z";
            if (!DateTimeOffset.TryParse(normalized, CultureInfo.InvariantCulture, DateTimeStyles.None, out at))
            {
                problem = $"'{Api.Problems.Echo(input)}' is not a valid date and time";
                return false;
            }
            return InRange(input, ref at, out problem);
        }
        if (zone is null)
        {
            problem = $"'{Api.Problems.Echo(input)}' has no offset: add Z or an offset such as +02:00{(takesTimeZone ? ", or give a timeZone" : "")}";
            return false;
        }
        if (!DateTime.TryParse(m.Groups["local"].Value, CultureInfo.InvariantCulture, DateTimeStyles.None, out var local))
        {
            problem = $"'{Api.Problems.Echo(input)}' is not a valid date and time";
            return false;
        }
        try
        {
            at = FromLocal(DateTime.SpecifyKind(local, DateTimeKind.Unspecified), zone);
        }
        catch (ArgumentOutOfRangeException)
        {
            problem = $"'{Api.Problems.Echo(input)}' in {zone.Id} falls outside the years 1-9999 in UTC";
            return false;
        }
        return InRange(input, ref at, out problem);
    }

    /// <summary>
    /// The form a program sends (`2030-01-01T09:00:00Z`, `.fff` or up to 7 fraction digits) read without the expression and
    /// .NET's general parser (1.5 % of the agent's CPU under the bench's POST load). Anything else, or a field out of its
    /// range, is left to the full reading, which names the problem: the same instant either way (ScheduleFormatTests).
    /// </summary>
    private static bool TryReadUtc(string s, out DateTimeOffset at)
    {
        at = default;
        if (s.Length is < 20 or > 28 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[^1] != 'Z'
            || !Digits(s, 0, 4, out var year) || !Digits(s, 5, 2, out var month) || !Digits(s, 8, 2, out var day)
            || !Digits(s, 11, 2, out var hour) || !Digits(s, 14, 2, out var minute) || !Digits(s, 17, 2, out var second))
            return false;
        var fraction = 0;
        if (s.Length > 20)
        {
            var digits = s.Length - 21;
            if (s[19] != '.' || digits < 1 || !Digits(s, 20, digits, out fraction))
                return false;
            for (var i = digits; i < 7; i++)
                fraction *= 10;
        }
        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
            return false;
        at = new DateTimeOffset(year, month, day, hour, minute, second, TimeSpan.Zero).AddTicks(fraction);
        return true;

        static bool Digits(string s, int start, int count, out int value)
        {
            value = 0;
            for (var i = start; i < start + count; i++)
            {
                var d = s[i] - '0';
                if ((uint)d > 9)
                    return false;
                value = value * 10 + d;
            }
            return true;
        }
    }

    /// <summary>A time whose UTC value leaves the years 1-9999 cannot be stored (milliseconds since 1970) or compared.</summary>
    private static bool InRange(string input, ref DateTimeOffset at, out string problem)
    {
        problem = "";
        var utcTicks = at.Ticks - at.Offset.Ticks;
        if (utcTicks is < 0 || utcTicks > DateTime.MaxValue.Ticks)
        {
            problem = $"'{Api.Problems.Echo(input)}' falls outside the years 1-9999 in UTC";
            at = default;
            return false;
        }
        return true;
    }

    /// <summary>A wall-clock time in a zone; a time skipped by a DST jump moves forward by the gap.</summary>
    public static DateTimeOffset FromLocal(DateTime local, TimeZoneInfo zone)
    {
        while (zone.IsInvalidTime(local))
            local = local.AddMinutes(1);
        // For an ambiguous (repeated) hour, take the first occurrence (the daylight one).
        var offset = zone.IsAmbiguousTime(local) ? zone.GetAmbiguousTimeOffsets(local).Max() : zone.GetUtcOffset(local);
        return new DateTimeOffset(local, offset);
    }

    /// <summary>
    /// A zone by its IANA (or Windows) id. The zoneinfo directory also holds files that are no zone a user means:
    /// posixrules and localtime (whatever this machine's default is), Factory (no offset, "-00"), and the posix/ and
    /// right/ trees (right/ counts leap seconds, so its clocks run 27 s off UTC's). .NET opens any of them by name.
    /// </summary>
    public static bool TryFindZone(string id, out TimeZoneInfo? zone)
    {
        zone = null;
        if (id.Length is 0 or > 64 || id.Contains("..", StringComparison.Ordinal) || id[0] is '/' or '\\'
            || id.Equals("posixrules", StringComparison.OrdinalIgnoreCase) || id.Equals("localtime", StringComparison.OrdinalIgnoreCase)
            || id.Equals("Factory", StringComparison.OrdinalIgnoreCase)
            || id.StartsWith("posix/", StringComparison.OrdinalIgnoreCase) || id.StartsWith("right/", StringComparison.OrdinalIgnoreCase))
            return false;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(id);
            return true;
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            // Linux opens zone files by name on a case-sensitive disk, a Mac on a case-insensitive one: "america/new_york" is
            // a zone there and was none here. Match the system's list of zones in any case (read only on such a miss).
            zone = TimeZoneInfo.GetSystemTimeZones().FirstOrDefault(z => z.Id.Equals(id, StringComparison.OrdinalIgnoreCase));
            return zone is not null;
        }
    }
}
