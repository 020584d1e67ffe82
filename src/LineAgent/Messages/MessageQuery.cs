using System.Globalization;
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

    /// <summary>Only rows above this position (a page of a text scan, <see cref="ScansText"/>).</summary>
    public long? After { get; init; }

    /// <summary>
    /// How many positions one page of a text scan reads at most: a word no index holds (an emoji, a word inside Chinese
    /// text) is looked for row by row, newest first, and one that matches nothing read all 1,000,000 rows of the bench
    /// (0.3-0.4 s). A page now stops after this many and its nextCursor goes on from there, so a page may hold fewer
    /// than `limit` messages, even none, with a nextCursor. 50,000 took 16.9 ms p95 there in a fast hour and 33.3 ms in a
    /// slow one (2026-12-05); 25,000 keeps it under the 20 ms goal in both.
    /// </summary>
    public long TextScanSpan { get; init; } = 25_000;

    /// <summary>
    /// The search has words and none of them is in the index, and nothing else narrows it to a few rows: it reads the
    /// rows themselves. A lead's or a batch's messages are found through their own index (ix_messages_lead, _batch) and
    /// read whole, in one page: spans over the whole history would give one of an old lead's pages per 50,000 positions.
    /// </summary>
    public bool ScansText => Q is not null && SplitQ(Q).Indexed is null && Recipient is not { Length: >= 3 } && LeadId is null && BatchId is null;

    public const int MaxLimit = 500;

    /// <summary>The parameters whose empty value means none: the text searches, and the paging (the first page, the default size).</summary>
    private static readonly HashSet<string> EmptyMeansNone = new(["q", "recipient", "limit", "cursor"], StringComparer.OrdinalIgnoreCase);

    /// <summary>The parameters that take several values, comma-separated or repeated.</summary>
    private static readonly HashSet<string> Lists = new(
        OpenApiMetadata.MessageFilters(paging: true).Where(p => p.Type == QueryType.EnumList).Select(p => p.Name), StringComparer.OrdinalIgnoreCase);

    /// <summary>The parameters the list (paging) and the export take: the ones their OpenAPI operations declare.</summary>
    private static readonly string[] ListParameters = [.. OpenApiMetadata.MessageFilters(paging: true).Select(p => p.Name)];
    private static readonly string[] ExportFilters = [.. OpenApiMetadata.MessageFilters(paging: false).Select(p => p.Name)];

    /// <summary>
    /// Reads the query string (any name/values pairs: the request's query, a CLI's options), naming every bad parameter.
    /// A name it does not know is refused (a misspelt filter would otherwise list, or export, everything).
    /// </summary>
    public static (MessageFilter Filter, List<FieldProblem> Problems) Parse(IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> query, bool paging,
        IReadOnlyCollection<string>? alsoKnown = null)
    {
        var q = new Dictionary<string, Microsoft.Extensions.Primitives.StringValues>(query, StringComparer.OrdinalIgnoreCase);
        var problems = new List<FieldProblem>();
        QueryValues.Unknown(q.Keys, (paging ? ListParameters : ExportFilters).Concat(alsoKnown ?? []).ToList(), problems);
        // Only the lists (status, type) take the parameter repeated; any other given twice arrives joined with a comma
        // (`q=ana&q=demo` searched for "ana,demo" and found nothing, silently). `limit` says so itself.
        foreach (var (name, values) in q)
            if (values.Count > 1 && !Lists.Contains(name))
                problems.Add(new(Problems.Echo(name, 50), "invalid_query", $"Query parameter '{Problems.Echo(name, 50)}' is given more than once; give it once."));
        // A filter given empty (`?batchId=`, a script's unset variable) listed, and exported, every message as if it were not
        // given (probe K). Only the text searches and the paging take an empty value as none.
        var empty = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in q)
            if (values.Any(string.IsNullOrWhiteSpace) && !EmptyMeansNone.Contains(name)
                && (paging ? ListParameters : ExportFilters).Contains(name, StringComparer.OrdinalIgnoreCase) && empty.Add(name))
            {
                // Named as the API names it (BatchId= is batchId), as the other problems are.
                var canonical = (paging ? ListParameters : ExportFilters).First(n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
                problems.Add(new(canonical, "invalid_filter", $"{canonical} is given empty; leave it out to filter by no {canonical}."));
            }
        // A parameter refused as empty is not read again (status=sent&status= would also be told that ',' is no status).
        string? Get(string name) => !empty.Contains(name) && q.TryGetValue(name, out var v) && (v.Count <= 1 || Lists.Contains(name)) && !string.IsNullOrWhiteSpace(v)
            ? v.ToString().Trim() : null;

        // Names are taken in any case, as format=CSV is (status=SENT was refused).
        var statuses = Get("status")?.ToLowerInvariant();
        if (statuses is not null && statuses.Split(',').Select(s => s.Trim()).Where(s => !MessageStatus.All.Contains(s)).ToList() is { Count: > 0 } badStatuses)
            problems.Add(new("status", "invalid_filter",
                $"status '{Problems.Echo(string.Join(",", badStatuses), 50)}' is not one; status must be among {string.Join(", ", MessageStatus.All)} (comma-separated)."));
        var types = Get("type")?.ToLowerInvariant();
        if (types is not null && types.Split(',').Select(s => s.Trim()).Where(s => !MessageType.Concrete.Contains(s)).ToList() is { Count: > 0 } badTypes)
            problems.Add(new("type", "invalid_filter",
                $"type '{Problems.Echo(string.Join(",", badTypes), 50)}' is not one; type must be among imessage, sms, email (comma-separated)."));
        var direction = Get("direction")?.Trim().ToLowerInvariant();
        if (direction is not null && direction is not ("inbound" or "outbound"))
            problems.Add(new("direction", "invalid_filter", "direction must be inbound or outbound."));
        DateTimeOffset? Time(string name)
        {
            var s = Get(name);
            if (s is null) return null;
            if (Schedules.TryParse(s, null, out var t, out var why, takesTimeZone: false)) return t;
            // An unencoded '+' of an offset arrives as a space ("...T00:00:00 02:00").
            var hint = System.Text.RegularExpressions.Regex.IsMatch(s, @"T[\d:.]+ \d{2}(:?\d{2})?$") ? " (a '+' in a URL must be written %2B)" : "";
            problems.Add(new(name, "invalid_filter", $"{name} {why}{hint}."));
            return null;
        }
        var from = Time("from");
        var to = Time("to");
        if (from > to)
            problems.Add(new("to", "invalid_filter", "to is before from."));

        var limit = QueryValues.Limit(Get("limit"), problems);
        var before = paging ? QueryValues.Before(Get("cursor"), problems) : null;
        var qtext = Get("q");
        // Characters as the contract's maxLength counts them (JSON Schema: code points), not UTF-16 units: 251 emoji were
        // refused as longer than 500 (probe N).
        if (qtext is { Length: > 500 } && QueryValues.CodePoints(qtext) > 500)
            problems.Add(new("q", "invalid_filter", "q is longer than 500 characters."));
        else if (qtext?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length is > MaxWords and var words)
            // Every word must match; each short word is a prefix term that FTS5 answers by merging every term it begins,
            // so 250 one-letter words cost 250 such merges.
            problems.Add(new("q", "invalid_filter", $"q has {words} words; at most {MaxWords}."));
        else if (qtext is not null && Tokens(qtext) is > MaxTokens and var tokens)
            // The index splits "a.b.c" into three terms: one word of 250 parts is a phrase of 250 terms.
            problems.Add(new("q", "invalid_filter", $"q has {tokens} words or word parts (letters and digits between other characters); at most {MaxTokens}."));

        return (new MessageFilter
        {
            Status = statuses, Type = types, LineId = Get("lineId"), LeadId = Get("leadId"), BatchId = Get("batchId"),
            Direction = direction, From = from, To = to, Recipient = RecipientText(Get("recipient")), Q = qtext, Before = before, Limit = limit,
        }, problems);
    }

    /// <summary>
    /// A phone number written with spaces, brackets, dots or dashes ("(202) 555-0199", "+1 202 555 0199") is searched
    /// without them, as numbers are stored (E.164): a value of only digits, spaces and ()+.- with 3 digits or more. A
    /// leading + stays (a country prefix: "+44 7" is UK numbers only). National forms with a trunk 0 are not rewritten.
    /// </summary>
    internal static string? RecipientText(string? value)
    {
        if (value is null || !value.Any(char.IsAsciiDigit) || !value.All(c => char.IsAsciiDigit(c) || c is ' ' or '(' or ')' or '+' or '-' or '.'))
            return value;
        var digits = new string(value.Where(char.IsAsciiDigit).ToArray());
        return digits.Length < 3 ? value : value.TrimStart().StartsWith('+') ? "+" + digits : digits;
    }

    /// <summary>Read through a full-text index: <c>q</c>, or a <c>recipient</c> substring of 3 characters or more.</summary>
    public bool UsesSearchIndex => SplitQ(Q).Indexed is not null || Recipient is { Length: >= 3 };

    /// <summary>SQL and parameters; newest first. Pass <paramref name="limit"/> null to stream every match.</summary>
    public (string Sql, DynamicParameters Parameters) ToSql(int? limit)
    {
        var sql = new StringBuilder("SELECT m.* FROM messages m");
        var where = new List<string>();
        var p = new DynamicParameters();
        // Words without a letter or digit (an emoji, "?!") are no term of the index: FTS5 finds nothing for them, and nothing
        // at all for a query that has one; nor is a word inside unspaced Chinese, Japanese or Thai text. They are looked for
        // as text in the rows the other words select.
        var (indexed, literal) = SplitQ(Q);
        if (indexed is not null)
        {
            sql.Append(" JOIN messages_fts f ON f.rowid = m.seq");
            where.Add($"messages_fts MATCH {FtsMatch(indexed, p)}");
        }
        for (var i = 0; i < literal.Count; i++)
        {
            where.Add($"(instr(m.content, @Literal{i}) > 0 OR instr(coalesce(m.recipient_name, ''), @Literal{i}) > 0)");
            p.Add($"Literal{i}", literal[i]);
        }
        // A substring of 3 characters or more is looked up in the trigram index; shorter ones read the rows.
        var recipientIndexed = Recipient is { Length: >= 3 }; // as UsesSearchIndex
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
        if (After is not null) { where.Add("m.seq > @After"); p.Add("After", After.Value); }
        if (where.Count > 0)
            sql.Append(" WHERE ").Append(string.Join(" AND ", where));
        // With a text search, FTS5 hands out its matches newest first (rowid = seq) and stops at the limit.
        sql.Append(indexed is not null ? " ORDER BY f.rowid DESC" : recipientIndexed ? " ORDER BY r.rowid DESC" : " ORDER BY m.seq DESC");
        if (limit is not null) { sql.Append(" LIMIT @Limit"); p.Add("Limit", limit.Value); }
        return (sql.ToString(), p);
    }

    /// <summary>Words looked up in the search vocabulary, at most this many per query (the rest stay prefix terms).</summary>
    private const int MaxExpandedWords = 8;

    /// <summary>Words in one <c>q</c>; more is a 400.</summary>
    public const int MaxWords = 16;

    /// <summary>Terms the index's tokenizer (unicode61) makes of one <c>q</c>: runs of letters and digits.</summary>
    public const int MaxTokens = 32;

    /// <summary>
    /// The words of <paramref name="q"/> the full-text index can answer (joined by spaces; null when none), and the words
    /// it cannot: those with no letter or digit, which its tokenizer drops.
    /// </summary>
    internal static (string? Indexed, List<string> Literal) SplitQ(string? q)
    {
        var literal = new List<string>();
        if (q is null)
            return (null, literal);
        var indexed = new List<string>();
        foreach (var word in q.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            (Tokens(word) > 0 && !word.Any(Unspaced) ? indexed : literal).Add(word);
        return (indexed.Count > 0 ? string.Join(' ', indexed) : null, literal);
    }

    /// <summary>
    /// A letter of a script written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese). unicode61
    /// makes one term of a whole run of them, so a word inside a sentence ("会議" in "明日の会議は10時です") is no term's
    /// beginning; such words are looked for as text. Surrogate halves are the ideographs past U+FFFF.
    /// </summary>
    private static bool Unspaced(char c) => c is >= '\u3040' and <= '\u30FF' or >= '\u3400' and <= '\u4DBF' or >= '\u4E00' and <= '\u9FFF'
        or >= '\uF900' and <= '\uFAFF' or >= '\u0E00' and <= '\u0EFF' or >= '\u1780' and <= '\u17FF' or >= '\u1000' and <= '\u109F'
        or >= '\uD840' and <= '\uD87F';

    private static int Tokens(string q)
    {
        // unicode61's token characters: letters, numbers (², ½ and ① too) and private use, by code point.
        static bool TokenChar(Rune r) => Rune.GetUnicodeCategory(r) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.DecimalDigitNumber
                or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber or UnicodeCategory.PrivateUse => true,
            _ => false,
        };
        var count = 0;
        var inToken = false;
        foreach (var r in q.EnumerateRunes())
        {
            // unicode61 keeps a word going through the combining accents U+0300-U+0331 (decomposed "résumé" is one term).
            var token = TokenChar(r) || (inToken && r.Value is >= 0x300 and <= 0x331);
            if (token && !inToken)
                count++;
            inToken = token;
        }
        return count;
    }

    /// <summary>A word that begins more terms of the index than this stays a prefix term.</summary>
    private const int MaxTermsPerWord = 16;

    /// <summary>
    /// The SQL expression MATCH is given for <paramref name="q"/>: every word must occur, as a word or the beginning of
    /// one, in the content or the recipient's name; user text is never FTS syntax (each word is a quoted string).
    /// A word of three or more ASCII letters and digits is searched as itself OR the longer terms of the index that begin
    /// with it, read from <c>messages_fts_vocab</c> in the same statement. FTS5 answers a prefix term (<c>"invoice"*</c>)
    /// by merging the whole doclist of every term it matches before it hands out one row (11 ms for q=invoice and 40 ms
    /// for q=the over the bench's 1,000,000 messages, whatever the page); exact terms it reads newest first and stops at
    /// the page (0.1-0.2 ms; with the vocabulary read 0.9 and 1.6 ms). Any other word (shorter, another script,
    /// punctuation the tokenizer splits), a word that begins more than <see cref="MaxTermsPerWord"/> longer terms, and
    /// words past the eighth stay prefix terms. Such a word pays for the vocabulary read (counting the matches of up to
    /// 17 terms, about a fifth of merging them) and then the prefix merge: at worst about 1.2x the prefix term alone.
    /// </summary>
    internal static string FtsMatch(string q, DynamicParameters p)
    {
        var words = q.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var parts = new List<string>(words.Length);
        for (var i = 0; i < words.Length; i++)
        {
            var word = words[i];
            p.Add($"Prefix{i}", "\"" + word.Replace("\"", "\"\"") + "\"*");
            if (i >= MaxExpandedWords || word.Length < 3 || !word.All(char.IsAsciiLetterOrDigit))
            {
                parts.Add($"@Prefix{i}");
                continue;
            }
            // unicode61 folds ASCII to lower case and keeps letters and digits together: the word is one term's beginning.
            var lo = word.ToLowerInvariant();
            // The word itself, and the longer terms it begins; the range starts past the word, so its own doclist (the longest,
            // for a common word: 11 ms for "the" on the bench) is not read to count it.
            p.Add($"Exact{i}", "(\"" + lo + "\"");
            p.Add($"Lo{i}", lo + "\u0001");
            p.Add($"Hi{i}", lo[..^1] + (char)(lo[^1] + 1));
            parts.Add($"(SELECT CASE WHEN count(*) <= {MaxTermsPerWord} " +
                $"""THEN @Exact{i} || coalesce(group_concat(' OR "' || replace(term, '"', '""') || '"', '' ORDER BY term), '') || ')' """ +
                $"ELSE @Prefix{i} END FROM (SELECT term FROM messages_fts_vocab WHERE term >= @Lo{i} AND term < @Hi{i} LIMIT {MaxTermsPerWord + 1}))");
        }
        return "(" + string.Join(" || ' AND ' || ", parts) + ")";
    }

    private static string EscapeLike(string s) => s.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");
}

public static class Cursor
{
    public static string Encode(long seq) => Convert.ToBase64String(Encoding.UTF8.GetBytes($"s:{seq}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A suppression list position (newest first: time added, then address), URL-safe like every other cursor.</summary>
    public static string Encode(long createdAt, string address) =>
        System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"a:{createdAt}:{address}"));

    public static bool TryDecode(string cursor, out long createdAt, out string address)
    {
        createdAt = 0;
        address = "";
        if (cursor.Length is 0 or > 1_000)
            return false;
        byte[] bytes;
        try { bytes = System.Buffers.Text.Base64Url.DecodeFromChars(cursor); }
        catch (FormatException) { return false; }
        var text = Encoding.UTF8.GetString(bytes);
        if (!text.StartsWith("a:", StringComparison.Ordinal))
            return false;
        var colon = text.IndexOf(':', 2);
        if (colon < 0
            || !long.TryParse(text.AsSpan(2, colon - 2), NumberStyles.None, CultureInfo.InvariantCulture, out createdAt))
            return false;
        address = text[(colon + 1)..];
        return address.Length > 0;
    }

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
