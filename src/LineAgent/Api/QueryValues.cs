using System.Globalization;
using LineAgent.Messages;

namespace LineAgent.Api;

/// <summary>
/// Query values that every list route reads the same way. Read from the raw string rather than bound as `int?`: the
/// request delegate generator answers a bare 400 (no problem named) when an optional `int?` query value does not
/// parse, without the exception that <see cref="AgentExceptionHandler"/> would turn into a named problem.
/// </summary>
public static class QueryValues
{
    public const int DefaultLimit = 50;

    /// <summary>The number of Unicode code points (what a JSON Schema maxLength counts); a lone surrogate counts as one.</summary>
    public static int CodePoints(string text)
    {
        var count = 0;
        for (var i = 0; i < text.Length; i++, count++)
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                i++;
        return count;
    }

    /// <summary>
    /// A query parameter the route does not take is named (a misspelt `tags=` on a list would otherwise list everything,
    /// on the import tag nothing).
    /// </summary>
    public static void Unknown(IEnumerable<string> names, IReadOnlyCollection<string> known, List<FieldProblem> problems)
    {
        foreach (var name in names.Where(k => !known.Contains(k, StringComparer.OrdinalIgnoreCase)))
        {
            var shown = Problems.Echo(name, 50);
            problems.Add(new(shown, "unknown_parameter", $"Unknown query parameter '{shown}'; this route takes {(known.Count == 0 ? "none" : string.Join(", ", known))}."));
        }
    }

    /// <summary>`cursor` of a seq-ordered list: the position the page starts below; null when absent, or refused (a problem names it).</summary>
    public static long? Before(string? cursor, List<FieldProblem> problems)
    {
        if (cursor is null)
            return null;
        if (Messages.Cursor.TryDecode(cursor, out var seq))
            return seq;
        problems.Add(new("cursor", "invalid_cursor", "cursor is not one this agent gave out."));
        return null;
    }

    /// <summary>`limit`: absent → 50; a whole number 1-500; otherwise a problem naming it (and 50 to go on checking).</summary>
    public static int Limit(string? raw, List<FieldProblem> problems)
    {
        if (string.IsNullOrWhiteSpace(raw))
            return DefaultLimit; // ?limit= is no limit given, as on every list
        raw = raw.Trim();
        if (raw.Contains(','))
        {
            // ?limit=5&limit=6 arrives joined: say so rather than "not a whole number".
            problems.Add(new("limit", "invalid_query", "Query parameter 'limit' is given more than once; give it once."));
            return DefaultLimit;
        }
        if (!int.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var limit))
        {
            problems.Add(raw.TrimStart('-', '+').All(char.IsAsciiDigit) && raw.TrimStart('-', '+').Length > 0
                ? new("limit", "invalid_filter", $"limit must be 1-{MessageFilter.MaxLimit}.")
                : new("limit", "invalid_query", $"Query parameter 'limit' must be a whole number; got '{Problems.Echo(raw)}'."));
            return DefaultLimit;
        }
        if (limit is < 1 or > MessageFilter.MaxLimit)
        {
            problems.Add(new("limit", "invalid_filter", $"limit must be 1-{MessageFilter.MaxLimit}."));
            return DefaultLimit;
        }
        return limit;
    }
}
