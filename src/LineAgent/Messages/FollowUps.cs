using System.ComponentModel;
using System.Globalization;
using System.Text.RegularExpressions;
using LineAgent.Api;
using LineAgent.Lines;
using LineAgent.Scheduling;

namespace LineAgent.Messages;

/// <summary>One follow-up of a send: its text and how long after the previous step was sent it goes.</summary>
public sealed record FollowUpRequest
{
    [Description("ISO 8601 duration after the previous step's actual sentAt, e.g. P2D, PT4H, P1DT12H (weeks, days, hours, minutes, seconds).")]
    public string? After { get; init; }
    [Description("The follow-up's text (a template on /bulk and on a send with leadId, like content).")]
    public string? Content { get; init; }
}

/// <summary>Request form of a recipient window: {"from": "09:00", "to": "20:00"} in the recipient's own time zone.</summary>
public sealed record RecipientWindowRequest
{
    [Description("Local start, HH:mm.")]
    public string? From { get; init; }
    [Description("Local end, HH:mm (exclusive); earlier than from = overnight.")]
    public string? To { get; init; }
}

/// <summary>The hours a message may reach the recipient, in the recipient's own time zone.</summary>
public sealed record RecipientWindowDto(
    [property: Description("Local start, HH:mm.")] string From,
    [property: Description("Local end, HH:mm (exclusive); earlier than from = overnight.")] string To)
{
    public override string ToString() => $"{From}-{To}";

    public static RecipientWindowDto? Parse(string? stored) =>
        stored is { Length: > 0 } s && s.Split('-') is [var from, var to] ? new RecipientWindowDto(from, to) : null;

    public SendWindowOptions ToWindow() => new() { From = From, To = To };
}

/// <summary>The request fields of issue 13 that a single send and a bulk share, validated the same way.</summary>
public sealed record SequenceFields(bool StopOnReply, IReadOnlyList<(TimeSpan After, string Content)> FollowUps, RecipientWindowDto? Window)
{
    public const int MaxFollowUps = 5;

    /// <summary>The recipient's zone, worked out when a window can apply (this send's or the line's).</summary>
    public RecipientZone? RecipientZoneFor(LineOptions line, string type, string? phone, string? leadTimeZone) =>
        RecipientZoneFor(line, type, phone, () => leadTimeZone);

    public RecipientZone? RecipientZoneFor(LineOptions line, string type, string? phone, Func<string?> leadTimeZone) =>
        Window is not null || PacingRules.HasHours(line.Pacing.RecipientWindow)
            ? RecipientZones.Resolve(type == MessageType.Email ? null : phone, leadTimeZone(), line)
            : null;

    public static SequenceFields Validate(bool? stopOnReply, IReadOnlyList<FollowUpRequest?>? followUps, RecipientWindowRequest? window,
        List<FieldProblem> problems, bool templates)
    {
        var steps = new List<(TimeSpan, string)>();
        if (followUps is { Count: > MaxFollowUps })
            problems.Add(new("followUps", "too_many_follow_ups", $"At most {MaxFollowUps} follow-ups; got {followUps.Count}."));
        for (var i = 0; followUps is not null && i < Math.Min(followUps.Count, MaxFollowUps); i++)
        {
            var f = followUps[i];
            if (f is null)
            {
                problems.Add(new($"followUps[{i}]", "invalid_follow_up", $"followUps[{i}] is null."));
                continue;
            }
            var contentProblems = new List<FieldProblem>();
            MessageValidator.ValidateContent(f.Content, contentProblems, required: true);
            foreach (var p in contentProblems)
                problems.Add(p with { Field = $"followUps[{i}].content", Detail = $"followUps[{i}]." + p.Detail });
            if (templates && f.Content is not null && contentProblems.Count == 0 && Batches.Templates.Problem(f.Content, $"followUps[{i}].content") is { } template)
                problems.Add(new($"followUps[{i}].content", "invalid_template", template));
            if (!Durations.TryParse(f.After, out var after, out var why))
                problems.Add(new($"followUps[{i}].after", "invalid_duration", $"followUps[{i}].after {why}."));
            else
                steps.Add((after, f.Content ?? ""));
        }
        RecipientWindowDto? dto = null;
        if (window is not null)
        {
            if (!SendWindow.TryParse(window.From, out var from) || !SendWindow.TryParse(window.To, out var to))
                problems.Add(new("recipientWindow", "invalid_window", "recipientWindow needs from and to as HH:mm (00:00-23:59), e.g. {\"from\": \"09:00\", \"to\": \"20:00\"}."));
            else if (from == to)
                problems.Add(new("recipientWindow", "invalid_window", "recipientWindow from and to are equal: give the hours the recipient may be written to."));
            else
                dto = new RecipientWindowDto(window.From!, window.To!);
        }
        return new SequenceFields(stopOnReply ?? false, steps, dto);
    }
}

/// <summary>ISO 8601 durations as exact lengths of time: weeks, days, hours, minutes, seconds (no years or months).</summary>
public static partial class Durations
{
    [GeneratedRegex(@"^P(?:(?<w>\d{1,4})W)?(?:(?<d>\d{1,5})D)?(?:T(?:(?<h>\d{1,6})H)?(?:(?<m>\d{1,7})M)?(?:(?<s>\d{1,9}(?:\.\d{1,3})?)S)?)?$")]
    private static partial Regex Iso();

    public static readonly TimeSpan Max = TimeSpan.FromDays(366);

    public static bool TryParse(string? input, out TimeSpan value, out string problem)
    {
        value = default;
        problem = "";
        var text = input?.Trim().ToUpperInvariant() ?? "";
        var m = Iso().Match(text);
        if (text.Length == 0 || !m.Success || text == "P" || text.EndsWith('T'))
        {
            // "P1Y", "P2M", "P1Y2M3D": a duration whose date part counts years or months ("2 DAYS" is just not a duration).
            var datePart = text.Split('T')[0];
            var yearsOrMonths = Regex.IsMatch(datePart, @"^P(?:\d+[YMWD])+$") && Regex.IsMatch(datePart, @"\d+[YM]");
            problem = yearsOrMonths
                ? $"'{input}' uses years or months, which have no fixed length; give days (e.g. P30D)"
                : $"'{input}' is not an ISO 8601 duration such as P2D, PT4H or P1DT12H";
            return false;
        }
        double N(string g) => m.Groups[g].Success ? double.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture) : 0;
        value = TimeSpan.FromDays(N("w") * 7 + N("d")) + TimeSpan.FromHours(N("h")) + TimeSpan.FromMinutes(N("m")) + TimeSpan.FromSeconds(N("s"));
        if (value <= TimeSpan.Zero || value > Max)
        {
            problem = $"'{input}' must be longer than zero and at most 366 days";
            return false;
        }
        return true;
    }

    /// <summary>P2D, PT4H30M, P1DT12H, PT0.5S.</summary>
    public static string Format(TimeSpan t)
    {
        var s = "P";
        if (t.Days > 0) s += $"{t.Days}D";
        var time = "";
        if (t.Hours > 0) time += $"{t.Hours}H";
        if (t.Minutes > 0) time += $"{t.Minutes}M";
        if (t.Seconds > 0 || t.Milliseconds > 0)
            time += t.Milliseconds > 0 ? $"{t.Seconds}.{t.Milliseconds:000}S" : $"{t.Seconds}S";
        return time.Length > 0 ? s + "T" + time : s.Length > 1 ? s : "PT0S";
    }
}

/// <summary>Follow-up sequences: constants shared by the SQL and the code.</summary>
public static class SequenceRows
{
    /// <summary>due_at of a step that waits for its previous one: 9999-12-31T23:59:59.999Z, which no claim reaches.</summary>
    public const long WaitingDueAt = 253402300799999;
}
