using System.Data;
using System.Text.Json;
using Dapper;
using LineAgent.Api;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;
using PhoneNumbers;

namespace LineAgent.Leads;

/// <summary>A lead after validation: phone in E.164, email lower case, names trimmed.</summary>
public sealed record LeadValues(string? FirstName, string? LastName, string? Phone, string? Email, string? Company,
    IReadOnlyDictionary<string, string?> Fields, IReadOnlyList<string> Tags);

public abstract record UpsertResult
{
    public sealed record Created(LeadRow Lead) : UpsertResult;
    public sealed record Merged(LeadRow Lead) : UpsertResult;
    /// <summary>The phone belongs to one lead and the email to another: merging would join two people.</summary>
    public sealed record Conflict(string Detail) : UpsertResult;
}

/// <summary>Leads: one per phone and one per email; a second lead with either is merged into the first.</summary>
public sealed class LeadStore(Db db, TimeProvider time) : ILeadLookup
{
    public async Task<LeadContact?> FindAsync(string leadId, CancellationToken ct) =>
        await GetAsync(leadId, ct) is { } l ? new LeadContact(l.Id, l.Phone, l.Email, l.FullName, Scheduling.RecipientZones.LeadZone(l.FieldMap()), l) : null;

    public async Task<LeadRow?> GetAsync(string id, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<LeadRow>(new CommandDefinition("SELECT * FROM leads WHERE id = @Id", new { Id = id }, cancellationToken: ct));
    }

    /// <summary>Whether any of <paramref name="ids"/> is a lead: stops at the first one found (usually the first id).</summary>
    public async Task<bool> AnyOfAsync(IReadOnlyCollection<string> ids, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.ExecuteScalarAsync<long?>(new CommandDefinition(
            "SELECT 1 FROM json_each(@Ids) AS i WHERE EXISTS (SELECT 1 FROM leads WHERE id = i.value) LIMIT 1",
            new { Ids = SqlList.Of(ids) }, cancellationToken: ct)) is not null;
    }

    public async Task<IReadOnlyList<LeadRow>> GetManyAsync(IReadOnlyCollection<string> ids, CancellationToken ct)
    {
        var result = new List<LeadRow>(ids.Count);
        await using var c = await db.OpenAsync(ct);
        result.AddRange(await c.QueryAsync<LeadRow>(new CommandDefinition(
            "SELECT * FROM leads WHERE id IN (SELECT value FROM json_each(@Ids))", new { Ids = SqlList.Of(ids) }, cancellationToken: ct)));
        return result;
    }

    /// <summary>Checks and normalises a lead, naming every problem. <paramref name="partial"/>: PATCH, nothing required.</summary>
    public static (LeadValues? Values, List<FieldProblem> Problems) Validate(LeadInput input, string defaultRegion, bool partial)
    {
        var problems = new List<FieldProblem>();
        var region = RegionOf(input.DefaultCountryCode, defaultRegion, problems);
        string? phone = null, email = null;
        if (!string.IsNullOrWhiteSpace(input.Phone))
        {
            if (Recipients.TryNormalizePhone(input.Phone, region, out var e164, out var why)) phone = e164;
            else problems.Add(new("phone", "invalid_phone", $"phone {why}."));
        }
        if (!string.IsNullOrWhiteSpace(input.Email))
        {
            if (Recipients.TryNormalizeEmail(input.Email, out var e, out var why)) email = e;
            else problems.Add(new("email", "invalid_email", $"email {why}."));
        }
        if (!partial && string.IsNullOrWhiteSpace(input.Phone) && string.IsNullOrWhiteSpace(input.Email))
            problems.Add(new("phone", "missing_recipient", "A lead needs a phone or an email."));
        foreach (var (name, value) in new[] { ("firstName", input.FirstName), ("lastName", input.LastName), ("company", input.Company) })
            if (value is { Length: > 200 })
                problems.Add(new(name, "too_long", $"{name} is longer than 200 characters."));
            else if (Clean(value) is { } cleaned && cleaned.Any(char.IsControl))
                problems.Add(new(name, "invalid_name", $"{name} contains a control character (a line break, tab or NUL); it is one line of text."));
        if (input.Fields is { Count: > 100 })
            problems.Add(new("fields", "too_many", "At most 100 fields."));
        // One problem for all bad fields, naming a few: a CSV row of 10,000 bad columns must not give 10,000 sentences.
        var badFields = (input.Fields ?? []).Where(f =>
            f.Key.Length is 0 or > 100 || f.Value is { Length: > 2000 } || f.Key.Any(char.IsControl)
            // a name a template cannot hold, unless it is being removed (a lead imported before names were checked: review)
            || (f.Key.AsSpan().IndexOfAny(NotInFieldNames) >= 0 && !string.IsNullOrEmpty(f.Value))
            || f.Value?.Contains('\0') == true)
            .Select(f => f.Key).ToList();
        if (badFields.Count > 0)
            problems.Add(new($"fields.{Shorten(badFields[0], 100)}", "invalid_field",
                $"Field names must be 1-100 printable characters without | {{ }} (a template could not name them) and values at most 2,000 characters without NUL: " +
                string.Join(", ", badFields.Take(3).Select(k => $"'{Shorten(k, 40)}'")) +
                (badFields.Count > 3 ? $" and {badFields.Count - 3:N0} more." : ".")));
        // The field recipient hours read the lead's zone from (RecipientZones.LeadZone): a zone no one can find would
        // silently be the line's.
        foreach (var (key, value) in input.Fields ?? [])
            if (value is { } zone && Scheduling.RecipientZones.LeadZone(new Dictionary<string, string> { [key] = zone }) is { } id && !Schedules.TryFindZone(id, out _))
                problems.Add(new($"fields.{Shorten(key, 100)}", "invalid_time_zone",
                    $"fields.{Shorten(key, 100)} '{Shorten(id, 100)}' is not an IANA time zone such as America/New_York (it sets the lead's hours for recipientWindow)."));
        if (input.Tags?.Any(t => t is null) == true)
            problems.Add(new("tags", "invalid_tags", "tags must be strings; null is not a tag."));
        var tags = (input.Tags ?? []).OfType<string>().Select(t => t.Trim()).Where(t => t.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (tags.Any(t => t.Length > 100 || t.Any(char.IsControl)) || tags.Count > 50)
            problems.Add(new("tags", "invalid_tags", "At most 50 tags of 1-100 printable characters."));
        if (problems.Count > 0)
            return (null, problems);
        return (new LeadValues(Clean(input.FirstName), Clean(input.LastName), phone, email, Clean(input.Company),
            input.Fields ?? new Dictionary<string, string?>(), tags), problems);
    }

    /// <summary>
    /// What a template's placeholder cannot hold in a field's name: `{{fields.a|b}}` is field a with the fallback b, and a
    /// brace ends or starts a placeholder (probe: a column 'a|b' was imported, and every lead's preview said "b").
    /// </summary>
    internal static readonly System.Buffers.SearchValues<char> NotInFieldNames = System.Buffers.SearchValues.Create("|{}");

    /// <summary>A CSV header as a field's name: | and braces become _ (the import's `columns` answer shows the name).</summary>
    internal static string FieldNameOf(string header) =>
        header.AsSpan().IndexOfAny(NotInFieldNames) < 0 ? header : string.Create(header.Length, header, (span, h) =>
        {
            h.AsSpan().CopyTo(span);
            span.ReplaceAny(NotInFieldNames, '_');
        });

    /// <summary>At most <paramref name="max"/> characters of <paramref name="s"/>, with an ellipsis when cut; control characters shown as '?'.</summary>
    private static string Shorten(string s, int max)
    {
        var cut = s.Length <= max ? s : s[..max] + "…";
        return cut.Any(char.IsControl) ? new string(cut.Select(c => char.IsControl(c) ? '?' : c).ToArray()) : cut;
    }

    /// <summary>A region code (US) or a calling code (1, +44) for reading national numbers.</summary>
    public static string RegionOf(string? code, string fallback, List<FieldProblem>? problems)
    {
        if (string.IsNullOrWhiteSpace(code))
            return fallback;
        var c = code.Trim().TrimStart('+');
        if (int.TryParse(c, out var calling))
        {
            var region = PhoneNumberUtil.GetInstance().GetRegionCodeForCountryCode(calling);
            if (region != "ZZ") return region;
        }
        else if (c.Length == 2 && PhoneNumberUtil.GetInstance().GetSupportedRegions().Contains(c.ToUpperInvariant()))
            return c.ToUpperInvariant();
        problems?.Add(new("defaultCountryCode", "invalid_country", $"'{code}' is neither a region such as US nor a calling code such as 1."));
        return fallback;
    }

    /// <summary>Creates the lead, or merges it into the one that already has its phone or email.</summary>
    public async Task<UpsertResult> UpsertAsync(LeadValues v, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var result = await UpsertAsync(c, tx, v, Time.ToMs(time.GetUtcNow()));
        await tx.CommitAsync(ct);
        return result;
    }

    public static async Task<UpsertResult> UpsertAsync(SqliteConnection c, IDbTransaction tx, LeadValues v, long now)
    {
        var matches = (await c.QueryAsync<LeadRow>(
            "SELECT * FROM leads WHERE (@Phone IS NOT NULL AND phone = @Phone) OR (@Email IS NOT NULL AND email = @Email)",
            new { v.Phone, v.Email }, tx)).AsList();
        if (matches.Count > 1)
            return new UpsertResult.Conflict(
                $"phone {v.Phone} belongs to {matches.First(m => m.Phone == v.Phone).Id} and email {v.Email} to {matches.First(m => m.Email == v.Email).Id}");
        if (matches.Count == 0)
        {
            var row = new LeadRow
            {
                Id = Ids.New("lead", Time.FromMs(now)), FirstName = NullIfEmpty(v.FirstName), LastName = NullIfEmpty(v.LastName), Phone = v.Phone,
                Email = v.Email, Company = NullIfEmpty(v.Company), Fields = JsonSerializer.Serialize(v.Fields.Where(f => !string.IsNullOrEmpty(f.Value)).ToDictionary(f => f.Key, f => f.Value)),
                Tags = JsonSerializer.Serialize(v.Tags), CreatedAt = now, UpdatedAt = now,
            };
            await c.ExecuteAsync("""
                INSERT INTO leads (id, first_name, last_name, phone, email, company, fields, tags, created_at, updated_at)
                VALUES (@Id, @FirstName, @LastName, @Phone, @Email, @Company, @Fields, @Tags, @CreatedAt, @UpdatedAt)
                """, row, tx);
            await SetTagsAsync(c, tx, row.Id, v.Tags);
            return new UpsertResult.Created(row);
        }
        var merged = Merge(matches[0], v, now, clearEmpty: false);
        await SaveAsync(c, tx, merged);
        return new UpsertResult.Merged(merged);
    }

    /// <summary>Incoming non-empty values win; fields are merged key by key; tags are united.</summary>
    public static LeadRow Merge(LeadRow existing, LeadValues v, long now, bool clearEmpty)
    {
        string? Pick(string? incoming, string? current) => incoming is null ? current : incoming.Length == 0 && clearEmpty ? null : incoming.Length == 0 ? current : incoming;
        var fields = existing.FieldMap();
        foreach (var (k, value) in v.Fields)
            if (string.IsNullOrEmpty(value)) { if (clearEmpty) fields.Remove(k); }
            else fields[k] = value;
        var tags = existing.TagList().Union(v.Tags, StringComparer.OrdinalIgnoreCase).ToList();
        return new LeadRow
        {
            Seq = existing.Seq, Id = existing.Id, FirstName = Pick(v.FirstName, existing.FirstName), LastName = Pick(v.LastName, existing.LastName),
            Phone = v.Phone ?? existing.Phone, Email = v.Email ?? existing.Email, Company = Pick(v.Company, existing.Company),
            Fields = JsonSerializer.Serialize(fields), Tags = JsonSerializer.Serialize(tags), CreatedAt = existing.CreatedAt, UpdatedAt = now,
        };
    }

    public static async Task SaveAsync(SqliteConnection c, IDbTransaction tx, LeadRow row)
    {
        await c.ExecuteAsync("""
            UPDATE leads SET first_name = @FirstName, last_name = @LastName, phone = @Phone, email = @Email, company = @Company,
                fields = @Fields, tags = @Tags, updated_at = @UpdatedAt
            WHERE id = @Id
            """, row, tx);
        await SetTagsAsync(c, tx, row.Id, row.TagList());
    }

    private static async Task SetTagsAsync(SqliteConnection c, IDbTransaction tx, string leadId, IEnumerable<string> tags)
    {
        await c.ExecuteAsync("DELETE FROM lead_tags WHERE lead_id = @LeadId", new { LeadId = leadId }, tx);
        foreach (var tag in tags)
            await c.ExecuteAsync("INSERT OR IGNORE INTO lead_tags (tag, lead_id) VALUES (@Tag, @LeadId)", new { Tag = tag.ToLowerInvariant(), LeadId = leadId }, tx);
    }

    public async Task<bool> DeleteAsync(string id, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.ExecuteAsync(new CommandDefinition("DELETE FROM leads WHERE id = @Id", new { Id = id }, cancellationToken: ct)) > 0;
    }

    /// <summary>
    /// Search (substring over names, company, phone, email) and tag filter, newest first. The text is one phrase, found
    /// within one field, the full name being one ("Maria Lopez": migration 017), accents and case aside; a phone written
    /// with brackets, spaces or dashes is searched by its digits, as <c>recipient=</c> on the history is (black-box probe).
    /// </summary>
    public static (string Sql, DynamicParameters P) SearchSql(string? q, string? tag, long? before, int? limit)
    {
        var where = new List<string>();
        var p = new DynamicParameters();
        var from = "leads l";
        if (!string.IsNullOrWhiteSpace(q))
        {
            var text = string.Join(' ', Messages.MessageFilter.RecipientText(q.Trim())!.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
            // The trigram index takes three characters (code points: an emoji is one) and more.
            if (text.EnumerateRunes().Count() >= 3)
            {
                from += " JOIN leads_fts f ON f.rowid = l.seq";
                where.Add("leads_fts MATCH @Match");
                p.Add("Match", "\"" + text.Replace("\"", "\"\"") + "\"");
            }
            else
            {
                // The text is matched as typed: % and _ in it are not wildcards.
                where.Add("(l.first_name LIKE @Like ESCAPE '\\' OR l.last_name LIKE @Like ESCAPE '\\' OR l.company LIKE @Like ESCAPE '\\' " +
                    "OR l.phone LIKE @Like ESCAPE '\\' OR l.email LIKE @Like ESCAPE '\\')");
                p.Add("Like", "%" + text.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%");
            }
        }
        if (!string.IsNullOrWhiteSpace(tag))
        {
            where.Add("l.id IN (SELECT lead_id FROM lead_tags WHERE tag = @Tag)");
            p.Add("Tag", tag.Trim().ToLowerInvariant());
        }
        if (before is not null) { where.Add("l.seq < @Before"); p.Add("Before", before); }
        var sql = $"SELECT l.* FROM {from}" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY l.seq DESC";
        if (limit is not null) { sql += " LIMIT @Limit"; p.Add("Limit", limit); }
        return (sql, p);
    }

    public async Task<IReadOnlyList<LeadRow>> SearchAsync(string? q, string? tag, long? before, int? limit, CancellationToken ct)
    {
        var (sql, p) = SearchSql(q, tag, before, limit);
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<LeadRow>(new CommandDefinition(sql, p, cancellationToken: ct))).AsList();
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static string? Clean(string? s) => s?.Trim() is { Length: > 0 } t ? t : s is null ? null : "";
}
