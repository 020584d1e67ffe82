using System.Text;
using Dapper;
using LineAgent.Api;
using LineAgent.Storage;

namespace LineAgent.Messages;

/// <summary>History filters shared by the list and the export.</summary>
public sealed record MessageFilter
{
    public string? Status { get; init; }
    public string? Type { get; init; }
    public string? LineId { get; init; }
    public string? LeadId { get; init; }
    public string? BatchId { get; init; }
    public string? Direction { get; init; }
    public DateTimeOffset? From { get; init; }
    public DateTimeOffset? To { get; init; }
    public string? Recipient { get; init; }
    public string? Q { get; init; }
    public long? Before { get; init; }
    public int Limit { get; init; } = 50;

    public const int MaxLimit = 500;

    /// <summary>Reads the query string (any name/values pairs: the request's query, a CLI's options), naming every bad parameter.</summary>
    public static (MessageFilter Filter, List<FieldProblem> Problems) Parse(IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> query, bool paging)
    {
        var q = new Dictionary<string, Microsoft.Extensions.Primitives.StringValues>(query, StringComparer.OrdinalIgnoreCase);
        var problems = new List<FieldProblem>();
        string? Get(string name) => q.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v.ToString().Trim() : null;

        var statuses = Get("status");
        if (statuses is not null && statuses.Split(',').Any(s => !MessageStatus.All.Contains(s.Trim())))
            problems.Add(new("status", "invalid_filter", $"status must be among {string.Join(", ", MessageStatus.All)} (comma-separated)."));
        var types = Get("type");
        if (types is not null && types.Split(',').Any(s => !MessageType.Concrete.Contains(s.Trim())))
            problems.Add(new("type", "invalid_filter", "type must be among imessage, sms, email (comma-separated)."));
        var direction = Get("direction");
        if (direction is not null && direction is not ("inbound" or "outbound"))
            problems.Add(new("direction", "invalid_filter", "direction must be inbound or outbound."));
        DateTimeOffset? Time(string name)
        {
            var s = Get(name);
            if (s is null) return null;
            if (Schedules.TryParse(s, null, out var t, out var why)) return t;
            problems.Add(new(name, "invalid_filter", $"{name} {why}."));
            return null;
        }
        var from = Time("from");
        var to = Time("to");
        if (from > to)
            problems.Add(new("to", "invalid_filter", "to is before from."));

        var limit = 50;
        if (Get("limit") is { } l && !int.TryParse(l, out limit))
            problems.Add(new("limit", "invalid_query", $"Query parameter 'limit' must be a whole number; got '{(l.Length > 100 ? l[..100] + "..." : l)}'."));
        else if (limit is < 1 or > MaxLimit)
            problems.Add(new("limit", "invalid_filter", $"limit must be 1-{MaxLimit}."));
        long? before = null;
        if (paging && Get("cursor") is { } cursor)
        {
            if (Cursor.TryDecode(cursor, out var seq)) before = seq;
            else problems.Add(new("cursor", "invalid_cursor", "cursor is not one this agent gave out."));
        }
        var qtext = Get("q");
        if (qtext is { Length: > 500 })
            problems.Add(new("q", "invalid_filter", "q is longer than 500 characters."));

        return (new MessageFilter
        {
            Status = statuses, Type = types, LineId = Get("lineId"), LeadId = Get("leadId"), BatchId = Get("batchId"),
            Direction = direction, From = from, To = to, Recipient = Get("recipient"), Q = qtext, Before = before, Limit = limit,
        }, problems);
    }

    /// <summary>SQL and parameters; newest first. Pass <paramref name="limit"/> null to stream every match.</summary>
    public (string Sql, DynamicParameters Parameters) ToSql(int? limit)
    {
        var sql = new StringBuilder("SELECT m.* FROM messages m");
        var where = new List<string>();
        var p = new DynamicParameters();
        if (Q is not null)
        {
            sql.Append(" JOIN messages_fts f ON f.rowid = m.seq");
            where.Add("messages_fts MATCH @Match");
            p.Add("Match", FtsQuery(Q));
        }
        // A substring of 3 characters or more is looked up in the trigram index; shorter ones read the rows.
        var recipientIndexed = Recipient is { Length: >= 3 };
        if (recipientIndexed)
        {
            sql.Append(" JOIN messages_recipients_fts r ON r.rowid = m.seq");
            where.Add("messages_recipients_fts MATCH @RecipientMatch");
            p.Add("RecipientMatch", "\"" + Recipient!.Replace("\"", "\"\"") + "\"");
        }
        void In(string column, string? csv, string name)
        {
            if (csv is null) return;
            var values = csv.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct().ToArray();
            where.Add($"m.{column} IN @{name}");
            p.Add(name, values);
        }
        In("status", Status, "Status");
        In("type", Type, "Type");
        if (LineId is not null) { where.Add("m.line_id = @LineId"); p.Add("LineId", LineId); }
        if (LeadId is not null) { where.Add("m.lead_id = @LeadId"); p.Add("LeadId", LeadId); }
        if (BatchId is not null) { where.Add("m.batch_id = @BatchId"); p.Add("BatchId", BatchId); }
        if (Direction is not null) { where.Add("m.direction = @Direction"); p.Add("Direction", Direction); }
        if (From is not null) { where.Add("COALESCE(m.sent_at, m.scheduled_at, m.created_at) >= @From"); p.Add("From", Storage.Time.ToMs(From.Value)); }
        if (To is not null) { where.Add("COALESCE(m.sent_at, m.scheduled_at, m.created_at) < @To"); p.Add("To", Storage.Time.ToMs(To.Value)); }
        if (Recipient is not null && !recipientIndexed)
        {
            where.Add("(m.recipient_phone LIKE @Recipient ESCAPE '\\' OR m.recipient_email LIKE @Recipient ESCAPE '\\' OR m.recipient_name LIKE @Recipient ESCAPE '\\')");
            p.Add("Recipient", "%" + EscapeLike(Recipient) + "%");
        }
        if (Before is not null) { where.Add("m.seq < @Before"); p.Add("Before", Before.Value); }
        if (where.Count > 0)
            sql.Append(" WHERE ").Append(string.Join(" AND ", where));
        // With a text search, FTS5 hands out its matches newest first (rowid = seq) and stops at the limit.
        sql.Append(Q is not null ? " ORDER BY f.rowid DESC" : recipientIndexed ? " ORDER BY r.rowid DESC" : " ORDER BY m.seq DESC");
        if (limit is not null) { sql.Append(" LIMIT @Limit"); p.Add("Limit", limit.Value); }
        return (sql.ToString(), p);
    }

    /// <summary>Each word becomes a quoted FTS5 prefix term, so user text is never FTS syntax.</summary>
    public static string FtsQuery(string q) =>
        string.Join(" ", q.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Select(w => "\"" + w.Replace("\"", "\"\"") + "\"*"));

    private static string EscapeLike(string s) => s.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");
}

public static class Cursor
{
    public static string Encode(long seq) => Convert.ToBase64String(Encoding.UTF8.GetBytes($"s:{seq}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static bool TryDecode(string cursor, out long seq)
    {
        seq = 0;
        try
        {
            var b64 = cursor.Replace('-', '+').Replace('_', '/');
            b64 += new string('=', (4 - b64.Length % 4) % 4);
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
            return text.StartsWith("s:", StringComparison.Ordinal) && long.TryParse(text[2..], out seq) && seq > 0;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
