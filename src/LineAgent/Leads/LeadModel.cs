using System.Text.Json;
using LineAgent.Storage;

namespace LineAgent.Leads;

public sealed class LeadRow
{
    public long Seq { get; set; }
    public string Id { get; set; } = "";
    public string? FirstName { get; set; }
    public string? LastName { get; set; }
    public string? Phone { get; set; }
    public string? Email { get; set; }
    public string? Company { get; set; }
    public string Fields { get; set; } = "{}";
    public string Tags { get; set; } = "[]";
    public long CreatedAt { get; set; }
    public long UpdatedAt { get; set; }

    public Dictionary<string, string> FieldMap() => JsonSerializer.Deserialize<Dictionary<string, string>>(Fields) ?? [];
    public List<string> TagList() => JsonSerializer.Deserialize<List<string>>(Tags) ?? [];
    public string? FullName => string.Join(" ", new[] { FirstName, LastName }.Where(s => !string.IsNullOrWhiteSpace(s))) is { Length: > 0 } n ? n : null;
}

public sealed record LeadDto(
    string Id, string? FirstName, string? LastName, string? Phone, string? Email, string? Company,
    IReadOnlyDictionary<string, string> Fields, IReadOnlyList<string> Tags, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static LeadDto From(LeadRow r) => new(r.Id, r.FirstName, r.LastName, r.Phone, r.Email, r.Company, r.FieldMap(), r.TagList(),
        Time.FromMs(r.CreatedAt), Time.FromMs(r.UpdatedAt));
}

/// <summary>Body of POST /api/leads and PATCH /api/leads/{id}; on PATCH, null = unchanged, "" = clear.</summary>
public sealed record LeadInput
{
    public string? FirstName { get; init; }
    public string? LastName { get; init; }
    public string? Phone { get; init; }
    public string? Email { get; init; }
    public string? Company { get; init; }
    public Dictionary<string, string?>? Fields { get; init; }
    public List<string>? Tags { get; init; }
    /// <summary>Region (US, GB) or calling code (1, 44) for national phone numbers; default Agent:DefaultRegion.</summary>
    public string? DefaultCountryCode { get; init; }
}

public sealed record LeadPage(IReadOnlyList<LeadDto> Items, string? NextCursor);
