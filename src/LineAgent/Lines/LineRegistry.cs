using Dapper;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Lines;

public sealed class LinesOptions
{
    public List<LineOptions> Lines { get; set; } = [];

    public static LineOptions DefaultLine() => new() { Id = "default", Name = "Default line" };

    /// <summary>
    /// Binds Lines:0, Lines:1... An entry 0 without an Id is the default line with the given settings on top
    /// (LINEAGENT__Lines__0__Name=Mac renames it and keeps its Id "default"); any other entry needs its Id.
    /// </summary>
    public static void Bind(IConfigurationSection section, LinesOptions options)
    {
        foreach (var entry in section.GetChildren())
        {
            var line = entry.Key == "0" && string.IsNullOrWhiteSpace(entry["Id"]) ? DefaultLine() : new LineOptions();
            entry.Bind(line);
            line.ConfigPath = entry.Path;
            options.Lines.Add(line);
        }
    }
}

/// <summary>Each problem names the setting (Lines:1:Id, Lines:mac:Pacing:Window:To), so `lineagent run` can say it in one line.</summary>
public sealed class LinesOptionsValidator : IValidateOptions<LinesOptions>
{
    private static readonly System.Text.RegularExpressions.Regex IdPattern = new("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");

    public ValidateOptionsResult Validate(string? name, LinesOptions options)
    {
        var problems = new List<string>();
        for (var i = 0; i < options.Lines.Count; i++)
        {
            var line = options.Lines[i];
            var at = line.ConfigPath == "Lines" ? $"Lines:{i}" : line.ConfigPath;
            if (string.IsNullOrWhiteSpace(line.Id))
                problems.Add($"{at}:Id is missing: every line but the first (Lines:0) needs an Id ({Hosting.ConfigurationProblem.EnvironmentName(at + ":Id")}, or \"Id\" in lineagent.json).");
            else if (!IdPattern.IsMatch(line.Id))
                problems.Add($"{at}:Id '{line.Id}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.");
            else if (line.Sms.Via is not (SmsLineOptions.ViaMessages or SmsLineOptions.ViaTwilio))
                problems.Add($"{at}:Sms:Via '{line.Sms.Via}' must be {SmsLineOptions.ViaMessages} (the Mac's iPhone relay) or {SmsLineOptions.ViaTwilio}.");
            else if (Hosting.AgentHost.PacingProblems(line) is { Count: > 0 } pacing)
                problems.Add($"{at} ('{line.Id}'): the pacing is invalid: {string.Join("; ", pacing)} " +
                    "(Window:From/To as HH:mm 00:00-23:59, an IANA Window:TimeZone, non-negative gaps and caps).");
            // What the SMTP channel parses at each send: an address it cannot read started fine and failed the first email
            // 500 invalid_sender while the line said nothing of it (probe I).
            if (!string.IsNullOrWhiteSpace(line.Email.From)
                && !(MimeKit.MailboxAddress.TryParse(line.Email.From, out var from) && from.Address.Contains('@')))
                problems.Add($"{at}:Email:From '{Api.Problems.Echo(line.Email.From)}' is not an email address (such as sales@example.com or \"Sam Lee <sam@example.com>\").");
        }
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

/// <summary>The lines of this agent: configured options plus the active flag, which the API can change.</summary>
public sealed class LineRegistry
{
    private readonly Db _db;
    private readonly TimeProvider _time;
    private readonly IReadOnlyList<LineOptions> _lines;
    private readonly Dictionary<string, bool> _active;
    private readonly Lock _gate = new();

    public LineRegistry(IOptions<LinesOptions> options, Db db, TimeProvider time, ILogger<LineRegistry> log)
    {
        _db = db;
        _time = time;
        _lines = options.Value.Lines.Count > 0 ? options.Value.Lines : [LinesOptions.DefaultLine()];
        var dupes = _lines.GroupBy(l => l.Id, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (dupes.Count > 0)
            throw new OptionsValidationException("Lines", typeof(LinesOptions), [$"Line ids must be unique: {string.Join(", ", dupes)}"]);
        using var connection = db.Open();
        var stored = connection.Query<(string LineId, bool Active)>("SELECT line_id AS LineId, active AS Active FROM line_state")
            .ToDictionary(x => x.LineId, x => x.Active);
        _active = _lines.ToDictionary(l => l.Id, l => stored.TryGetValue(l.Id, out var a) ? a : l.Active);
        var viaMessages = _lines.Where(l => l.IMessage.Enabled || (l.Sms.Enabled && l.Sms.Via == SmsLineOptions.ViaMessages)).Select(l => l.Id).ToList();
        if (viaMessages.Count > 1)
            log.LogWarning("Lines {Lines} all send through this Mac's one Messages account: their sends are serialised, but each is paced on its own, " +
                "so the Apple ID carries their sum. One Messages line per Mac is the safe setup.", string.Join(", ", viaMessages));
    }

    public IReadOnlyList<LineOptions> All => _lines;

    public LineOptions? Find(string id) => _lines.FirstOrDefault(l => l.Id == id);

    public bool IsActive(string id)
    {
        lock (_gate) return _active.TryGetValue(id, out var a) && a;
    }

    public IReadOnlyList<LineOptions> ActiveLines => _lines.Where(l => IsActive(l.Id)).ToList();

    public event Action<string>? ActiveChanged;

    public async Task SetActiveAsync(string id, bool active, CancellationToken ct)
    {
        await using var connection = await _db.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO line_state (line_id, active, updated_at) VALUES (@Id, @Active, @Now)
            ON CONFLICT (line_id) DO UPDATE SET active = excluded.active, updated_at = excluded.updated_at
            """,
            new { Id = id, Active = active, Now = Time.ToMs(_time.GetUtcNow()) }, cancellationToken: ct));
        lock (_gate) _active[id] = active;
        ActiveChanged?.Invoke(id);
    }
}
