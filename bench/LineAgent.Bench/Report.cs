using System.Globalization;
using System.Text;

namespace LineAgent.Bench;

/// <summary>The figures, printed at the end as one Markdown table: figure | agent | bare | ratio.</summary>
public sealed class Report
{
    private readonly List<(string Figure, string Agent, string Bare, string Ratio)> _rows = [];
    private readonly List<string> _notes = [];

    public static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public void Add(string figure, string agent, string bare = "", string ratio = "")
    {
        lock (_rows) _rows.Add((figure, agent, bare, ratio));
        Console.WriteLine($"  {figure}: {agent}{(bare.Length > 0 ? $"  (bare {bare}{(ratio.Length > 0 ? $", ratio {ratio}" : "")})" : "")}");
    }

    public void Note(string note)
    {
        lock (_notes) _notes.Add(note);
        Console.WriteLine($"  note: {note}");
    }

    public static string Ratio(double agent, double bare) =>
        bare > 0 && !double.IsNaN(agent) && !double.IsNaN(bare) ? (agent / bare).ToString(agent / bare >= 10 ? "0" : "0.00", Inv) + "x" : "—";

    public static string Ms(double ms) => double.IsNaN(ms) ? "—" : ms.ToString(ms >= 100 ? "0" : ms >= 10 ? "0.0" : "0.00", Inv) + " ms";

    public static string Seconds(double s) => s.ToString(Math.Abs(s) >= 100 ? "0" : "0.000", Inv) + " s";

    public static string Mb(long kb) => (kb / 1024.0).ToString("0.0", Inv) + " MB";

    public static string N(double v, string format = "N0") => v.ToString(format, Inv);

    public string Markdown(string header)
    {
        var sb = new StringBuilder();
        sb.AppendLine(header).AppendLine();
        string[] head = ["figure", "agent", "bare", "ratio"];
        List<string[]> body;
        lock (_rows) body = _rows.Select(r => new[] { r.Figure, r.Agent, r.Bare, r.Ratio }).ToList();
        var widths = Enumerable.Range(0, 4).Select(i => Math.Max(head[i].Length, body.Select(r => r[i].Length).DefaultIfEmpty(0).Max())).ToArray();
        string Line(string[] cells) => "| " + string.Join(" | ", cells.Select((c, i) => c.PadRight(widths[i]))) + " |";
        sb.AppendLine(Line(head));
        sb.AppendLine("|" + string.Join("|", widths.Select(w => new string('-', w + 2))) + "|");
        foreach (var r in body)
            sb.AppendLine(Line(r));
        lock (_notes)
            if (_notes.Count > 0)
            {
                sb.AppendLine();
                foreach (var n in _notes) sb.AppendLine("- " + n);
            }
        return sb.ToString();
    }
}
