using System.Text;
using System.Text.RegularExpressions;
using LineAgent.Leads;

namespace LineAgent.Batches;

/// <summary>
/// Personalisation: `{{firstName}}`, `{{lastName}}`, `{{fullName}}`, `{{company}}`, `{{phone}}`, `{{email}}`,
/// `{{fields.any}}`, each with an optional fallback `{{firstName|there}}`. A value that is missing
/// without a fallback fails that lead only, naming the field.
/// </summary>
public static partial class Templates
{
    public static readonly string[] Names = ["firstName", "lastName", "fullName", "company", "phone", "email"];

    // A placeholder never spans a brace: `{{a.b{{firstName}}` is text, then {{firstName}}. Matched without backtracking,
    // so the time is linear in the text: a backtracking engine scanned from every `{{a.` to the end looking for `}}`,
    // quadratic in a template of repeated `{{a.b` (seconds of CPU for one request's content).
    private static readonly Regex PlaceholderRegex = new(
        @"\{\{\s*([A-Za-z][A-Za-z0-9_]*(?:\.[^|{}\s][^|{}]*?)?)\s*(?:\|([^{}]*))?\}\}",
        RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);

    private static Regex Placeholder() => PlaceholderRegex;

    /// <summary>
    /// What is wrong with a template, or null: braces left over once every placeholder is read (`{{firstName`,
    /// `{{firstName}`, `{{fields.}}`, `}}`), a known name in single braces (`{firstName}`), or placeholders that name
    /// nothing a lead can have (`{{fristName}}`). Any of these would otherwise go out as literal text.
    /// </summary>
    public static string? Problem(string template, string field)
    {
        // Each kind of problem once, all of them (probe: "Hi {firstName} {{nope}}" named only the single braces).
        var said = new List<string>();
        var at = 0;
        string? stray = null;
        foreach (Match m in Placeholder().Matches(template))
        {
            if (stray is null && Stray(template, at, m.Index) is { } before)
                stray = before;
            at = m.Index + m.Length;
        }
        if ((stray ?? Stray(template, at, template.Length)) is { } first)
            said.Add(Unclosed(field, first));
        if (SingleBraces().Match(template) is { Success: true } single)
        {
            // In the name's own case: {FirstName} is to become {{firstName}}, not the unknown {{FirstName}}.
            var name = single.Groups[1].Value;
            var canonical = Names.FirstOrDefault(n => n.Equals(name, StringComparison.OrdinalIgnoreCase))
                ?? (name.StartsWith("fields.", StringComparison.OrdinalIgnoreCase) ? "fields." + name["fields.".Length..] : name);
            said.Add($"{field} has {single.Value}: placeholders take two braces, {{{{{canonical}{single.Groups[2].Value}}}}}.");
        }
        if (UnknownPlaceholders(template) is { Count: > 0 } unknown)
            said.Add($"Unknown placeholder(s) {string.Join(", ", unknown.Select(u => "{{" + u + "}}"))} in {field}; use {string.Join(", ", Names)} or fields.<name>.");
        return said.Count == 0 ? null : string.Join(" ", said);
    }

    private static string Unclosed(string field, string near) =>
        $"{field} has a brace that opens or closes no placeholder near '{near}': write placeholders as {{{{firstName}}}} or {{{{fields.name|fallback}}}}.";

    /// <summary>The first `{{` or `}}` in [from, to), with a few characters after it; null when there is none.</summary>
    private static string? Stray(string t, int from, int to)
    {
        var open = t.IndexOf("{{", from, to - from, StringComparison.Ordinal);
        var close = t.IndexOf("}}", from, to - from, StringComparison.Ordinal);
        var k = open < 0 ? close : close < 0 ? open : Math.Min(open, close);
        return k < 0 ? null : t.Substring(k, Math.Min(30, to - k));
    }

    /// <summary>
    /// A placeholder in single braces: a known name in any case, or fields.name, with or without a fallback ({firstName},
    /// {FirstName}, {firstName|there}, {fields.plan}). Only the bare names were caught; the others went out as typed (probe).
    /// </summary>
    [GeneratedRegex(@"(?<!\{)\{\s*(firstName|lastName|fullName|company|phone|email|fields\.[^\s{}|]+)\s*(\|[^{}]*)?\}(?!\})",
        RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex SingleBraces();

    /// <summary>Placeholders that name nothing a lead can have (e.g. a typo like {{fristName}}).</summary>
    public static IReadOnlyList<string> UnknownPlaceholders(string template) =>
        Placeholder().Matches(template).Select(m => m.Groups[1].Value)
            .Where(n => !Names.Contains(n, StringComparer.Ordinal) && !n.StartsWith("fields.", StringComparison.Ordinal))
            .Distinct().ToList();

    /// <summary>
    /// The text of a send to one lead (a single send with leadId, or an edit of a message that has a lead), rendered as a
    /// bulk renders it; null with the problem added to <paramref name="problems"/> when the template is wrong or a field it
    /// names is empty for the lead without a fallback. Text without braces is returned as it is. Before, such a send went
    /// out with `{{firstName}}` as typed (probe K: an edited follow-up of a bulk).
    /// </summary>
    public static string? RenderForLead(string text, string field, LeadRow lead, List<FieldProblem> problems)
    {
        if (!text.Contains('{') && !text.Contains('}'))
            return text;
        if (Problem(text, field) is { } wrong)
        {
            problems.Add(new(field, "invalid_template", wrong));
            return null;
        }
        var (rendered, missing) = Compile(text).Render(lead);
        if (missing is not null)
            problems.Add(new(field, "missing_field",
                $"{{{{{missing}}}}} in {field} is empty for lead {lead.Id} and the template gives no fallback ({{{{{missing}|...}}}})."));
        return rendered;
    }

    /// <summary>For one lead; a bulk compiles its template once (<see cref="Compile"/>) and renders it per lead.</summary>
    public static (string? Text, string? MissingField) Render(string template, LeadRow lead) => Compile(template).Render(lead);

    /// <summary>The template's literal text and placeholders, found once: rendering a lead is then a walk over them.</summary>
    public static CompiledTemplate Compile(string template)
    {
        var parts = new List<CompiledTemplate.Part>();
        var at = 0;
        foreach (Match m in Placeholder().Matches(template))
        {
            if (m.Index > at)
                parts.Add(new(at, m.Index - at, null, null, null));
            var name = m.Groups[1].Value;
            var field = name.StartsWith("fields.", StringComparison.Ordinal) ? name["fields.".Length..] : null;
            // The fallback without the spaces around it, as the name: {{ firstName | there }} gives "there" (probe: " there ").
            parts.Add(new(m.Index, m.Length, name, field, m.Groups[2].Success ? m.Groups[2].Value.Trim() : null));
            at = m.Index + m.Length;
        }
        if (at < template.Length)
            parts.Add(new(at, template.Length - at, null, null, null));
        return new CompiledTemplate(template, [.. parts]);
    }

    /// <summary>A field's value: by its CSV header exactly, else ignoring case and punctuation.</summary>
    internal static string? Field(Dictionary<string, string> fields, string name, string simplified)
    {
        if (fields.TryGetValue(name, out var v)) return v;
        foreach (var (key, value) in fields)
            if (Simplify(key) == simplified)
                return value;
        return null;
    }

    internal static string Simplify(string s)
    {
        var b = new StringBuilder(s.Length);
        foreach (var ch in s)
            if (char.IsLetterOrDigit(ch)) b.Append(char.ToLowerInvariant(ch));
        return b.ToString();
    }
}

/// <summary>A template split into literal text and placeholders (<see cref="Templates.Compile"/>).</summary>
public sealed class CompiledTemplate
{
    /// <summary>Literal text (no <see cref="Name"/>) or a placeholder, as a span of the template.</summary>
    internal sealed record Part(int Start, int Length, string? Name, string? Field, string? Fallback)
    {
        public string? FieldKey { get; } = Field is null ? null : Templates.Simplify(Field);
    }

    private readonly string _template;
    private readonly Part[] _parts;
    private readonly bool _usesFields;

    internal CompiledTemplate(string template, Part[] parts)
    {
        _template = template;
        _parts = parts;
        _usesFields = parts.Any(p => p.Field is not null);
    }

    /// <summary>The text for <paramref name="lead"/>, or the first placeholder that has no value and no fallback.</summary>
    public (string? Text, string? MissingField) Render(LeadRow lead)
    {
        var fields = _usesFields ? lead.FieldMap() : null;
        var text = new StringBuilder(_template.Length + 32);
        foreach (var p in _parts)
        {
            if (p.Name is null)
            {
                text.Append(_template, p.Start, p.Length);
                continue;
            }
            var value = p.Field is not null ? Templates.Field(fields!, p.Field, p.FieldKey!) : p.Name switch
            {
                "firstName" => lead.FirstName,
                "lastName" => lead.LastName,
                "fullName" => lead.FullName,
                "company" => lead.Company,
                "phone" => lead.Phone,
                "email" => lead.Email,
                _ => null,
            };
            if (!string.IsNullOrWhiteSpace(value))
                text.Append(value);
            else if (p.Fallback is not null)
                text.Append(p.Fallback);
            else
                return (null, p.Name);
        }
        return (text.ToString(), null);
    }
}
