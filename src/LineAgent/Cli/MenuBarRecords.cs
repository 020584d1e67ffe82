using System.CommandLine;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LineAgent.Cli;

/// <summary>
/// `lineagent menubar-records status|problem`: the menu-bar plugin's JSON reader. Reads JSON on stdin and
/// prints the same records as the plugin's Python reader (launchd/menubar/lineagent.30s.sh, python_reader),
/// one per line, fields separated by \x1f, strings without control characters and shortened:
///   A version uptimeSeconds dryRun dryRunOutbox      C scheduled queued sending sentToday failedToday
///   L id name active                                 N nextScheduledAt (epoch seconds, empty = none)
///   H type channel state detail                      E code message (only when lastError is set)
///   U sentToday maxPerDay sentLastHour maxPerHour windowOpen windowOpensAt(epoch)
///   P detail-or-title of an RFC 7807 problem (mode problem)      X why the JSON could not be read
/// Values are rendered as Python's str() renders them (numbers, True/False inside objects, repr of
/// objects and lists), so the plugin shows the same menu whichever reader ran. Where the Python reader
/// would stop with an error (a date such as month 13), this prints nothing and exits 1, and the plugin
/// reports that the reader failed. The reason in an X record is worded by .NET, not by Python's json.
/// </summary>
public static partial class MenuBarRecords
{
    private const char Us = '\x1f';

    public static Command Create()
    {
        var mode = new Argument<string>("mode") { Description = "status (the answer of GET /api/status) or problem (an RFC 7807 error answer)." };
        mode.AcceptOnlyFromAmong("status", "problem");
        // Not hidden: the plugin finds out from `menubar-records --help` whether a binary has the command.
        var command = new Command("menubar-records", "For the menu-bar plugin: read JSON on stdin, print its records (one per line, fields separated by \\x1f).");
        command.Arguments.Add(mode);
        command.SetAction(result =>
        {
            using var input = new MemoryStream();
            using (var stdin = Console.OpenStandardInput())
                stdin.CopyTo(input);
            var text = Render(result.GetValue(mode)!, input.ToArray());
            if (text is null)
                return 1;
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(new UTF8Encoding(false).GetBytes(text));
            return 0;
        });
        return command;
    }

    /// <summary>The records as text (ending in a newline), or null where the Python reader would have failed.</summary>
    public static string? Render(string mode, byte[] input)
    {
        var records = new List<string>();
        void Rec(params string[] fields) => records.Add(string.Join(Us, fields));

        JsonDocument? doc = null;
        try
        {
            if (input.AsSpan().StartsWith("\xEF\xBB\xBF"u8))
                throw new FormatException("unexpected UTF-8 byte order mark");
            var json = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(input);
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 1000 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new FormatException("not a JSON object");
        }
        catch (Exception e) when (e is JsonException or FormatException or DecoderFallbackException or ArgumentException)
        {
            doc?.Dispose();
            doc = null;
            Rec("X", Clean(e.Message, 120));
        }

        try
        {
            using (doc)
            {
                if (doc is not null)
                    Records(mode, doc.RootElement, Rec);
            }
        }
        catch (Exception e) when (e is PythonError or InvalidOperationException or ArgumentException)
        {
            return null;
        }
        return string.Join('\n', records) + "\n";
    }

    private static void Records(string mode, JsonElement d, Action<string[]> rec)
    {
        if (mode == "problem")
        {
            var detail = Get(d, "detail");
            rec(["P", Clean(Truthy(detail) ? detail : Get(d, "title"), 160)]);
            return;
        }
        rec(["A", Clean(Get(d, "version"), 40), Clean(Get(d, "uptimeSeconds")), Clean(Get(d, "dryRun")), Clean(Get(d, "dryRunOutbox"))]);
        foreach (var item in Arr(Get(d, "lines")))
        {
            var l = Obj(item);
            rec(["L", Clean(Get(l, "id"), 200), Clean(Get(l, "name"), 60), Clean(Get(l, "active"))]);
            foreach (var hItem in Arr(Get(l, "health")))
            {
                var h = Obj(hItem);
                rec(["H", Clean(Get(h, "type"), 40), Clean(Get(h, "channel"), 40), Clean(Get(h, "state"), 40), Clean(Get(h, "detail"), 100)]);
            }
            if (Get(l, "usage") is { ValueKind: JsonValueKind.Object } u)
                rec(["U", Clean(Get(u, "sentToday")), Clean(Get(u, "maxPerDay")), Clean(Get(u, "sentLastHour")), Clean(Get(u, "maxPerHour")),
                    Clean(Get(u, "windowOpen")), Epoch(Get(u, "windowOpensAt")), Clean(Get(u, "pacingEnabled"))]);
        }
        var c = Obj(Get(d, "counts"));
        rec(["C", .. new[] { "scheduled", "queued", "sending", "sentToday", "failedToday" }.Select(k => Clean(Get(c, k)))]);
        rec(["N", Epoch(Get(d, "nextScheduledAt"))]);
        if (Get(d, "lastError") is { ValueKind: JsonValueKind.Object } e)
            rec(["E", Clean(Get(e, "code"), 40), Clean(Get(e, "message"), 80)]);
    }

    /// <summary>Where Python would raise (and the reader print nothing).</summary>
    private sealed class PythonError(string message) : Exception(message);

    // --- Python's dict.get, truthiness, obj() and arr() ------------------------------------------

    /// <summary>dict.get: a missing key is None; of repeated keys the last one counts (as json.loads keeps it).</summary>
    private static JsonElement? Get(JsonElement? o, string key)
    {
        if (o is not { ValueKind: JsonValueKind.Object } obj) return null;
        JsonElement? found = null;
        foreach (var p in obj.EnumerateObject())
            if (p.Name == key) found = p.Value;
        return found is { ValueKind: JsonValueKind.Null } ? null : found;
    }

    private static JsonElement? Obj(JsonElement? v) => v is { ValueKind: JsonValueKind.Object } ? v : null;

    private static IEnumerable<JsonElement> Arr(JsonElement? v) =>
        v is { ValueKind: JsonValueKind.Array } a ? a.EnumerateArray() : [];

    private static bool Truthy(JsonElement? v) => v switch
    {
        null => false,
        { ValueKind: JsonValueKind.False } => false,
        { ValueKind: JsonValueKind.String } s => s.GetString()!.Length > 0,
        { ValueKind: JsonValueKind.Number } n => IsIntLiteral(n) ? !BigInteger.Parse(n.GetRawText(), CultureInfo.InvariantCulture).IsZero
            : double.Parse(n.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture) != 0,
        { ValueKind: JsonValueKind.Array } a => a.GetArrayLength() > 0,
        { ValueKind: JsonValueKind.Object } o => o.EnumerateObject().Any(),
        _ => true,
    };

    // --- clean() -----------------------------------------------------------------------------------

    private static string Clean(JsonElement? v, int n = 200) => v switch
    {
        null => "",
        { ValueKind: JsonValueKind.True } => "true",
        { ValueKind: JsonValueKind.False } => "false",
        { ValueKind: JsonValueKind.Number } num => PyNumberStr(num),
        { ValueKind: JsonValueKind.String } s => Clean(s.GetString()!, n),
        { } other => Clean(PyRepr(other), n),
    };

    // C1 too: SwiftBar splits the plugin's output on CharacterSet.newlines, which holds U+0085 (probe: menu items of its own).
    [GeneratedRegex("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]")]
    private static partial Regex ControlChars();

    /// <summary>Control characters become spaces, then Python's strip(), then at most n code points (the last one "…").</summary>
    private static string Clean(string s, int n)
    {
        s = PyStrip(ControlChars().Replace(s, " "));
        var starts = CodePointStarts(s);
        return starts.Count <= n ? s : s[..starts[n - 1]] + "\u2026";
    }

    /// <summary>The characters Python's str.isspace() accepts (what str.strip() removes).</summary>
    private static bool PyIsSpace(char c) =>
        c is >= '\t' and <= '\r' or >= '\x1c' and <= ' ' or '\x85' or '\xa0' or '\u1680' or >= '\u2000' and <= '\u200a'
            or '\u2028' or '\u2029' or '\u202f' or '\u205f' or '\u3000';

    private static string PyStrip(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && PyIsSpace(s[start])) start++;
        while (end > start && PyIsSpace(s[end - 1])) end--;
        return s[start..end];
    }

    /// <summary>Index of each code point (a surrogate pair is one, as in Python's str; a lone surrogate is one too).</summary>
    private static List<int> CodePointStarts(string s)
    {
        var starts = new List<int>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            starts.Add(i);
            if (char.IsSurrogatePair(s, i)) i++;
        }
        return starts;
    }

    // --- numbers: str() of an int or float, as clean() prints them ------------------------------

    private static bool IsIntLiteral(JsonElement n) => n.GetRawText().IndexOfAny(['.', 'e', 'E']) < 0;

    /// <summary>clean() of a number: str(int(v)) when float(v) is integral, else str(v).</summary>
    private static string PyNumberStr(JsonElement n)
    {
        if (IsIntLiteral(n))
        {
            var big = BigInteger.Parse(n.GetRawText(), CultureInfo.InvariantCulture);
            if (double.IsInfinity((double)big))
                throw new PythonError("int too large to convert to float");
            return big.ToString(CultureInfo.InvariantCulture);
        }
        var d = double.Parse(n.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture);
        if (double.IsFinite(d) && Math.Floor(d) == d)
            return new BigInteger(d).ToString(CultureInfo.InvariantCulture);
        return PyFloatRepr(d);
    }

    /// <summary>repr(float): the shortest digits that round-trip; fixed notation for exponents -4..15, else d.ddde±XX.</summary>
    private static string PyFloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var sign = d < 0 || (d == 0 && double.IsNegative(d)) ? "-" : "";
        var r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        string digits;
        int decpt;   // the value is 0.<digits> × 10^decpt
        var e = r.IndexOf('E');
        if (e >= 0)
        {
            var mantissa = r[..e];
            var exp = int.Parse(r[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            digits = mantissa.Replace(".", "");
            decpt = exp + 1;
        }
        else
        {
            var dot = r.IndexOf('.');
            var intPart = dot < 0 ? r : r[..dot];
            var frac = dot < 0 ? "" : r[(dot + 1)..];
            digits = (intPart + frac).TrimStart('0');
            decpt = intPart == "0" ? -(frac.Length - frac.TrimStart('0').Length) : intPart.Length;
        }
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) return sign + "0.0";
        if (decpt is > -4 and <= 16)
        {
            if (decpt <= 0) return sign + "0." + new string('0', -decpt) + digits;
            if (decpt >= digits.Length) return sign + digits + new string('0', decpt - digits.Length) + ".0";
            return sign + digits[..decpt] + "." + digits[decpt..];
        }
        var exponent = decpt - 1;
        var m = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
        return $"{sign}{m}e{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
    }

    // --- repr() of what json.loads returns: dict, list, str, int, float, True/False/None --------

    private static string PyRepr(JsonElement v)
    {
        switch (v.ValueKind)
        {
            case JsonValueKind.Null: return "None";
            case JsonValueKind.True: return "True";
            case JsonValueKind.False: return "False";
            case JsonValueKind.String: return PyStrRepr(v.GetString()!);
            case JsonValueKind.Number:
                return IsIntLiteral(v)
                    ? BigInteger.Parse(v.GetRawText(), CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture)
                    : PyFloatRepr(double.Parse(v.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture));
            case JsonValueKind.Array:
                return "[" + string.Join(", ", v.EnumerateArray().Select(PyRepr)) + "]";
            default:
                // A dict keeps a repeated key at its first position with its last value.
                var keys = new List<string>();
                var values = new Dictionary<string, JsonElement>();
                foreach (var p in v.EnumerateObject())
                {
                    if (!values.ContainsKey(p.Name)) keys.Add(p.Name);
                    values[p.Name] = p.Value;
                }
                return "{" + string.Join(", ", keys.Select(k => PyStrRepr(k) + ": " + PyRepr(values[k]))) + "}";
        }
    }

    private static string PyStrRepr(string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == quote || c == '\\') { sb.Append('\\').Append(c); continue; }
            switch (c)
            {
                case '\t': sb.Append("\\t"); continue;
                case '\n': sb.Append("\\n"); continue;
                case '\r': sb.Append("\\r"); continue;
            }
            if (char.IsSurrogatePair(s, i))
            {
                var cp = char.ConvertToUtf32(s[i], s[i + 1]);
                if (PyPrintable(CharUnicodeInfo.GetUnicodeCategory(cp))) sb.Append(s, i, 2);
                else sb.Append(CultureInfo.InvariantCulture, $"\\U{cp:x8}");
                i++;
                continue;
            }
            if (c == ' ' || (!char.IsSurrogate(c) && PyPrintable(CharUnicodeInfo.GetUnicodeCategory(c))))
                sb.Append(c);
            else if (c < 0x100)
                sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            else
                sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
        }
        return sb.Append(quote).ToString();
    }

    /// <summary>str.isprintable(): not a control, format, surrogate, private-use, unassigned or separator character.</summary>
    private static bool PyPrintable(UnicodeCategory category) => category is not (UnicodeCategory.Control or UnicodeCategory.Format
        or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
        or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator);

    // --- epoch() ----------------------------------------------------------------------------------

    // Python's re.match with `$`: also matches before a final newline. \d as in Python: any decimal digit.
    [GeneratedRegex(@"\A(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?\n?\z")]
    private static partial Regex IsoTime();

    private static int PyInt(string digits) =>
        digits.Aggregate(0, (n, c) => n * 10 + (int)char.GetNumericValue(c));

    /// <summary>An ISO 8601 time as Unix seconds; "" when it is not one. An impossible date raises, as datetime() does.</summary>
    private static string Epoch(JsonElement? v)
    {
        if (v is not { ValueKind: JsonValueKind.String } s) return "";
        var m = IsoTime().Match(s.GetString()!);
        if (!m.Success) return "";
        int G(int i) => PyInt(m.Groups[i].Value);
        DateTime t;
        try
        {
            t = new DateTime(G(1), G(2), G(3), G(4), G(5), G(6), DateTimeKind.Utc);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new PythonError(e.Message);
        }
        var seconds = (long)(t - DateTime.UnixEpoch).TotalSeconds;
        var z = m.Groups[7].Success ? m.Groups[7].Value : "Z";
        if (z != "Z")
        {
            var z2 = z[1..].Replace(":", "");
            seconds -= (z[0] == '-' ? -1 : 1) * (PyInt(z2[..2]) * 3600L + PyInt(z2[2..]) * 60L);
        }
        return seconds.ToString(CultureInfo.InvariantCulture);
    }
}
