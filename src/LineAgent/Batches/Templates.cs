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

    [GeneratedRegex(@"\{\{\s*([A-Za-z][A-Za-z0-9_]*(?:\.[^|}\s][^|}]*?)?)\s*(?:\|([^}]*))?\}\}")]
    private static partial Regex Placeholder();

    /// <summary>Placeholders that name nothing a lead can have (e.g. a typo like {{fristName}}).</summary>
    public static IReadOnlyList<string> UnknownPlaceholders(string template) =>
        Placeholder().Matches(template).Select(m => m.Groups[1].Value)
            .Where(n => !Names.Contains(n, StringComparer.Ordinal) && !n.StartsWith("fields.", StringComparison.Ordinal))
            .Distinct().ToList();

    public static (string? Text, string? MissingField) Render(string template, LeadRow lead)
    {
        var fields = template.Contains("fields.", StringComparison.Ordinal) ? lead.FieldMap() : null;
        string? missing = null;
        var text = Placeholder().Replace(template, m =>
        {
            var name = m.Groups[1].Value;
            var value = name switch
            {
                "firstName" => lead.FirstName,
                "lastName" => lead.LastName,
                "fullName" => lead.FullName,
                "company" => lead.Company,
                "phone" => lead.Phone,
                "email" => lead.Email,
                _ when name.StartsWith("fields.", StringComparison.Ordinal) => Field(fields!, name["fields.".Length..]),
                _ => null,
            };
            if (!string.IsNullOrWhiteSpace(value))
                return value;
            if (m.Groups[2].Success)
                return m.Groups[2].Value;
            missing ??= name;
            return m.Value;
        });
        return missing is null ? (text, null) : (null, missing);
    }

    /// <summary>Fields match their CSV header exactly, else ignoring case and punctuation.</summary>
    private static string? Field(Dictionary<string, string> fields, string name)
    {
        if (fields.TryGetValue(name, out var v)) return v;
        var key = Simplify(name);
        return fields.FirstOrDefault(f => Simplify(f.Key) == key).Value;
    }

    private static string Simplify(string s)
    {
        var b = new StringBuilder(s.Length);
        foreach (var ch in s)
            if (char.IsLetterOrDigit(ch)) b.Append(char.ToLowerInvariant(ch));
        return b.ToString();
    }
}
