using System.Globalization;

namespace LineAgent.Bench;

/// <summary>Command line: --seconds N, --idle-seconds N, --only api,due,sparse,idle,history,bulk, --quick.</summary>
public sealed record BenchOptions
{
    public static readonly string[] AllSteps = ["api", "due", "sparse", "idle", "history", "bulk"];

    public double Seconds { get; init; } = 10;
    public double WarmupSeconds { get; init; } = 5;
    public int Connections { get; init; } = 32;
    public double IdleSeconds { get; init; } = 60;
    public int IdleRows { get; init; } = 10_000;
    public int DueCount { get; init; } = 1_000;
    public double DueLeadSeconds { get; init; } = 8;
    public int SparseCount { get; init; } = 200;
    public double SparseSpreadSeconds { get; init; } = 20;
    public int HistoryRows { get; init; } = 1_000_000;
    public int HistoryRuns { get; init; } = 30;
    public int BulkLeads { get; init; } = 10_000;
    public bool Quick { get; init; }
    public HashSet<string> Only { get; init; } = [.. AllSteps];

    public bool Runs(string step) => Only.Contains(step);

    public const string Usage = """
        dotnet run -c Release --project bench/LineAgent.Bench [-- options]
          --seconds N        POST /api/messages load per target (default 10)
          --warmup N         load before the measured window, per target (default 5)
          --idle-seconds N   idle CPU window (default 60)
          --only LIST        a subset of: api,due,sparse,idle,history,bulk
          --quick            a short smoke run (small counts, short windows)
        """;

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        if (args.Contains("--quick"))
            o = o with
            {
                Quick = true, Seconds = 3, WarmupSeconds = 1, IdleSeconds = 5, IdleRows = 1_000, DueCount = 200, DueLeadSeconds = 5,
                SparseCount = 40, SparseSpreadSeconds = 5, HistoryRows = 100_000, HistoryRuns = 10, BulkLeads = 1_000,
            };
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
            double Positive(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0
                ? v : throw new ArgumentException($"'{s}' is not a positive number.\n{Usage}");
            switch (args[i])
            {
                case "--quick":
                    break;
                case "--seconds":
                    o = o with { Seconds = Positive(Next()) };
                    break;
                case "--warmup":
                    o = o with { WarmupSeconds = Positive(Next()) };
                    break;
                case "--idle-seconds":
                    o = o with { IdleSeconds = Positive(Next()) };
                    break;
                case "--only":
                    var steps = Next().Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
                    if (steps.Count == 0 || !steps.IsSubsetOf(AllSteps))
                        throw new ArgumentException($"--only takes {string.Join(",", AllSteps)}.\n{Usage}");
                    o = o with { Only = steps };
                    break;
                case "-h" or "--help" or "-?":
                    throw new HelpRequested();
                default:
                    throw new ArgumentException($"Unknown option '{args[i]}'.\n{Usage}");
            }
        }
        return o;
    }
}

public sealed class HelpRequested : Exception;
