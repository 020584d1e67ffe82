using System.Globalization;
using System.Text;

namespace MessagesEmulation;

/// <summary>
/// A small JSON reader/writer for control.json and state.json: objects become Dictionary&lt;string, object?&gt;,
/// arrays List&lt;object?&gt;, numbers double, plus string, bool and null. It exists because every script call reads
/// these files and loading System.Text.Json costs a script call about 12 ms of start-up.
/// </summary>
public static class MiniJson
{
    public static object? Parse(string text)
    {
        var p = new Parser(text);
        p.SkipSpace();
        var value = p.Value(0);
        p.SkipSpace();
        if (p.Pos != text.Length)
            throw p.Error("unexpected content after the value");
        return value;
    }

    public static string Write(object? value, bool indented = false)
    {
        var sb = new StringBuilder();
        Write(sb, value, indented, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? value, bool indented, int depth)
    {
        switch (value)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case string s: String(sb, s); break;
            case double d: Number(sb, d); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case int i: sb.Append(i.ToString(CultureInfo.InvariantCulture)); break;
            case Dictionary<string, object?> map:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in map)
                {
                    sb.Append(first ? "" : ",");
                    first = false;
                    NewLine(sb, indented, depth + 1);
                    String(sb, k);
                    sb.Append(indented ? ": " : ":");
                    Write(sb, v, indented, depth + 1);
                }
                if (!first) NewLine(sb, indented, depth);
                sb.Append('}');
                break;
            case List<object?> list:
                sb.Append('[');
                for (var n = 0; n < list.Count; n++)
                {
                    sb.Append(n == 0 ? "" : ",");
                    NewLine(sb, indented, depth + 1);
                    Write(sb, list[n], indented, depth + 1);
                }
                if (list.Count > 0) NewLine(sb, indented, depth);
                sb.Append(']');
                break;
            default: throw new ArgumentException($"cannot write {value.GetType()} as JSON");
        }
    }

    private static void NewLine(StringBuilder sb, bool indented, int depth)
    {
        if (indented)
            sb.Append('\n').Append(' ', 2 * depth);
    }

    private static void Number(StringBuilder sb, double d)
    {
        if (double.IsNaN(d) || double.IsInfinity(d))
            throw new ArgumentException("JSON has no NaN or infinity");
        sb.Append(d == Math.Floor(d) && Math.Abs(d) < 9e15 ? ((long)d).ToString(CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture));
    }

    /// <summary>A JSON string literal in ASCII (everything else as \uXXXX escapes).</summary>
    public static void String(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20 || c > 0x7E)
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    private sealed class Parser(string text)
    {
        public int Pos;

        public FormatException Error(string what) => new($"{what} at offset {Pos}");

        public void SkipSpace()
        {
            while (Pos < text.Length && text[Pos] is ' ' or '\t' or '\r' or '\n')
                Pos++;
        }

        private char Peek() => Pos < text.Length ? text[Pos] : throw Error("unexpected end");

        private void Expect(string word)
        {
            if (string.CompareOrdinal(text, Pos, word, 0, word.Length) != 0)
                throw Error($"expected {word}");
            Pos += word.Length;
        }

        public object? Value(int depth)
        {
            if (depth > 64)
                throw Error("nested too deeply");
            switch (Peek())
            {
                case '{':
                {
                    Pos++;
                    var map = new Dictionary<string, object?>();
                    SkipSpace();
                    if (Peek() == '}') { Pos++; return map; }
                    while (true)
                    {
                        SkipSpace();
                        if (Peek() != '"') throw Error("expected a property name");
                        var key = String();
                        SkipSpace();
                        Expect(":");
                        SkipSpace();
                        map[key] = Value(depth + 1);
                        SkipSpace();
                        var c = Peek();
                        Pos++;
                        if (c == '}') return map;
                        if (c != ',') throw Error("expected , or }");
                    }
                }
                case '[':
                {
                    Pos++;
                    var list = new List<object?>();
                    SkipSpace();
                    if (Peek() == ']') { Pos++; return list; }
                    while (true)
                    {
                        SkipSpace();
                        list.Add(Value(depth + 1));
                        SkipSpace();
                        var c = Peek();
                        Pos++;
                        if (c == ']') return list;
                        if (c != ',') throw Error("expected , or ]");
                    }
                }
                case '"': return String();
                case 't': Expect("true"); return true;
                case 'f': Expect("false"); return false;
                case 'n': Expect("null"); return null;
                default: return Number();
            }
        }

        private double Number()
        {
            var start = Pos;
            while (Pos < text.Length && text[Pos] is (>= '0' and <= '9') or '-' or '+' or '.' or 'e' or 'E')
                Pos++;
            if (Pos == start || !double.TryParse(text.AsSpan(start, Pos - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
                throw Error("expected a value");
            return d;
        }

        private string String()
        {
            Pos++; // opening quote
            var sb = new StringBuilder();
            while (true)
            {
                var c = Peek();
                Pos++;
                if (c == '"')
                    return sb.ToString();
                if (c < 0x20)
                    throw Error("control character in a string");
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                var e = Peek();
                Pos++;
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (Pos + 4 > text.Length || !int.TryParse(text.AsSpan(Pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code))
                            throw Error("bad \\u escape");
                        sb.Append((char)code);
                        Pos += 4;
                        break;
                    default: throw Error("bad escape");
                }
            }
        }
    }
}
