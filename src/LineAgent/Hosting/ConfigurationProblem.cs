using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace LineAgent.Hosting;

/// <summary>
/// A configuration the agent cannot start with (a setting that does not parse, options that fail validation),
/// said in one line that names the setting: `lineagent run` prints it and exits 78, with no stack trace.
/// </summary>
public static partial class ConfigurationProblem
{
    /// <summary>
    /// A settings file the configuration could not parse (<c>&lt;data dir&gt;/lineagent.json</c> with a missing brace), as one
    /// line naming the file and where the parser stopped; null for anything else. The framework says "Failed to load
    /// configuration from file '...'" with the JSON reader's error inside.
    /// </summary>
    public static string? UnreadableFile(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++, e = e.InnerException)
        {
            if (e is not InvalidDataException || FileLoadFailure().Match(e.Message) is not { Success: true } m)
                continue;
            // Not JSON: the reader's error (a FormatException around a JsonException). JSON the configuration cannot take (an
            // array at the top, a key given twice): the FormatException alone says why.
            if (e.InnerException?.InnerException is System.Text.Json.JsonException reason)
            {
                var at = reason.LineNumber is { } line ? $" at line {line + 1}, byte {reason.BytePositionInLine + 1}" : "";
                return $"lineagent: configuration: {m.Groups["file"].Value} is not valid JSON{at}: {reason.Message.Split(" LineNumber:", 2)[0].TrimEnd()} " +
                    "Fix it, or move it aside to start with the defaults.";
            }
            var why = (e.InnerException?.InnerException ?? e.InnerException)?.Message.TrimEnd('.', ' ') ?? "it could not be read";
            return $"lineagent: configuration: {m.Groups["file"].Value} cannot be used as settings: {why}. " +
                "It must be one JSON object of sections (such as {\"Agent\": {\"DryRun\": true}}). Fix it, or move it aside to start with the defaults.";
        }
        return null;
    }

    [GeneratedRegex(@"^Failed to load configuration from file '(?<file>.+)'\.$")]
    private static partial Regex FileLoadFailure();

    private const string Prefix = "lineagent: configuration: ";

    public static string? Describe(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 16; depth++)
        {
            switch (e)
            {
                case OptionsValidationException invalid:
                    return "lineagent: configuration: " + string.Join(" ", invalid.Failures.Select(f => Setting(f.Trim())));
                case ConfigurationValuesException values:
                    return "lineagent: configuration: " + string.Join(" ", values.Values.Select(v => MustBe(v.Key, v.Type.FullName!)));
                case UnknownSettingsException unknown:
                    return "lineagent: configuration: " + unknown.Message;
                case InvalidOperationException when ConvertFailure().Match(e.Message) is { Success: true } m:
                    return "lineagent: configuration: " + MustBe(m.Groups["key"].Value, m.Groups["type"].Value);
                case AggregateException { InnerExceptions.Count: > 0 } aggregate:
                    // Every section's problems at once (the start's validation gathers one exception per options type): only the
                    // first was told, so each further section took another start to learn of (probe I: Api, then Storage, then Webhooks).
                    var lines = aggregate.InnerExceptions.Select(Describe).OfType<string>().Distinct().ToList();
                    return lines.Count == 0 ? null
                        : "lineagent: configuration: " + string.Join(" ", lines.Select(l => l.StartsWith(Prefix, StringComparison.Ordinal) ? l[Prefix.Length..] : l));
            }
            e = e.InnerException;
        }
        return null;
    }

    // The generated DataAnnotations validators say "Port: The field EmailOptions.Smtp.Port must be between 0 and 65535.", or
    // "DefaultRegion: The AgentOptions.DefaultRegion field is required.":
    // the user wrote Email:Smtp:Port.
    private static string Setting(string failure)
    {
        if (AnnotationFailure().Match(failure) is not { Success: true } m || !Sections.TryGetValue(m.Groups["type"].Value, out var section))
            return failure;
        var key = section + ":" + m.Groups["path"].Value.Replace('.', ':');
        return $"{key} {m.Groups["rest"].Value} (set by {EnvironmentName(key)}, lineagent.json or --{key}=...).";
    }

    /// <summary>Options type name → its section, from the CLI's one list of sections (AgentOptions → Agent).</summary>
    private static readonly Dictionary<string, string> Sections = Cli.AgentCli.SettingSections
        .Where(s => s.Value is not null).ToDictionary(s => s.Value!.Name, s => s.Key);

    // "The field AgentOptions.X must be ..." ([Range], [RegularExpression]) and "The AgentOptions.X field is required." ([Required]).
    [GeneratedRegex(@"^\w+: The (?:field )?(?<type>\w+)\.(?<path>[\w.]+) (?:field )?(?<rest>.+?)\.?$")]
    private static partial Regex AnnotationFailure();

    private static string MustBe(string key, string type) =>
        $"{key} must be {Expected(type)} (set by {EnvironmentName(key)}, lineagent.json or --{key}=...).";

    public static string EnvironmentName(string key) => "LINEAGENT__" + key.Replace(":", "__");

    private static string Expected(string type) => type switch
    {
        "System.Int32" or "System.Int64" or "System.Int16" => "a whole number",
        "System.Double" or "System.Decimal" or "System.Single" => "a number",
        "System.Boolean" => "true or false",
        "System.TimeSpan" => "a duration such as 00:00:30 (hh:mm:ss) or 1.00:00:00 (days.hh:mm:ss)",
        "System.DayOfWeek" => "a day name (Monday ... Sunday)",
        _ => "a valid " + type[(type.LastIndexOf('.') + 1)..],
    };

    // .NET 10 writes the value too: "Failed to convert configuration value 'abc' at 'Lines:0:Pacing:MinGap' to type 'System.TimeSpan'."
    [GeneratedRegex("^Failed to convert configuration value (?:'.*?' )?at '(?<key>[^']+)' to type '(?<type>[^']+)'")]
    private static partial Regex ConvertFailure();
}

/// <summary>
/// Keys in lineagent.json or LINEAGENT__ environment variables that name no setting (<see cref="AgentHost.RefuseUnknownSettings"/>), every
/// one of them. The command line refused them already; these were taken and ignored: `{"Agent":{"DryRunn":true}}` started a live
/// agent where a dry run was meant (probe I).
/// </summary>
public sealed class UnknownSettingsException(IReadOnlyList<string> problems) : InvalidOperationException(string.Join(" ", problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>Settings whose values the configuration binder would not convert (<see cref="AgentHost.RefuseBadValues"/>), every one of them.</summary>
public sealed class ConfigurationValuesException(IReadOnlyList<ConfigurationValuesException.Value> values)
    : InvalidOperationException(string.Join(" ", values.Select(v => $"Failed to convert configuration value at '{v.Key}' to type '{v.Type.FullName}'.")))
{
    public sealed record Value(string Key, Type Type);

    public IReadOnlyList<Value> Values { get; } = values;
}
