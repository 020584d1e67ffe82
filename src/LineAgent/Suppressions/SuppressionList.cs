using System.Data;
using Dapper;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Suppressions;

public sealed class SuppressionRow
{
    public string Address { get; set; } = "";
    public string Reason { get; set; } = "";
    public string Source { get; set; } = "";
    public string? MessageId { get; set; }
    public long CreatedAt { get; set; }
}

public sealed record SuppressionDto(string Address, string Reason, string Source, string? MessageId, DateTimeOffset CreatedAt)
{
    public static SuppressionDto From(SuppressionRow r) => new(r.Address, r.Reason, r.Source, r.MessageId, Time.FromMs(r.CreatedAt));
}

/// <summary>One opt-out list for every channel: phones in E.164, emails in lower case.</summary>
public sealed class SuppressionList(Db db, TimeProvider time)
{
    public static class Sources
    {
        public const string Reply = "reply";
        public const string Twilio = "twilio";
        public const string Api = "api";
    }

    public async Task<bool> IsSuppressedAsync(string? address, CancellationToken ct = default)
    {
        if (string.IsNullOrEmpty(address))
            return false;
        await using var c = await db.OpenAsync(ct);
        return await c.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT COUNT(*) FROM suppressions WHERE address = @Address", new { Address = Key(address) }, cancellationToken: ct)) > 0;
    }

    /// <summary>Which of <paramref name="addresses"/> are suppressed, in one query (the dispatcher asks once per batch of sends).</summary>
    public async Task<IReadOnlySet<string>> SuppressedAmongAsync(IEnumerable<string?> addresses, CancellationToken ct = default)
    {
        var byKey = addresses.OfType<string>().Where(a => a.Length > 0).Distinct().ToLookup(Key);
        if (byKey.Count == 0)
            return new HashSet<string>();
        await using var c = await db.OpenAsync(ct);
        var keys = await c.QueryAsync<string>(new CommandDefinition(
            "SELECT address FROM suppressions WHERE address IN (SELECT value FROM json_each(@Keys))",
            new { Keys = SqlList.Of(byKey.Select(g => g.Key)) }, cancellationToken: ct));
        return keys.SelectMany(k => byKey[k]).ToHashSet();
    }

    /// <summary>Adds (or keeps) an address; returns true when it was not suppressed before.</summary>
    public async Task<bool> AddAsync(string address, string reason, string source, string? messageId, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return Add(c, null, address, reason, source, messageId, Time.ToMs(time.GetUtcNow()));
    }

    /// <summary>
    /// Adds an address; true when it was not suppressed before. An address added through the API that a reply or Twilio put
    /// there first becomes the API's (with its reason), so a START no longer lifts it (review: it stayed `reply`).
    /// </summary>
    public static bool Add(IDbConnection c, IDbTransaction? tx, string address, string reason, string source, string? messageId, long now)
    {
        var existed = c.ExecuteScalar<long>("SELECT COUNT(*) FROM suppressions WHERE address = @Address", new { Address = Key(address) }, tx) > 0;
        c.Execute(
            """
            INSERT INTO suppressions (address, reason, source, message_id, created_at) VALUES (@Address, @Reason, @Source, @MessageId, @Now)
            ON CONFLICT (address) DO UPDATE SET source = excluded.source, reason = excluded.reason
              WHERE excluded.source = 'api' AND suppressions.source <> 'api'
            """,
            new { Address = Key(address), Reason = reason, Source = source, MessageId = messageId, Now = now }, tx);
        return !existed;
    }

    public async Task<bool> RemoveAsync(string address, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return Remove(c, null, address);
    }

    public static bool Remove(IDbConnection c, IDbTransaction? tx, string address) =>
        c.Execute("DELETE FROM suppressions WHERE address = @Address", new { Address = Key(address) }, tx) > 0;

    /// <summary>
    /// What the sender's own START lifts: a suppression a STOP reply made, and Twilio's (the carrier's STOP) when the START
    /// came through Twilio, which lifts its own block on it; never one added through the API (an operator's do-not-contact:
    /// a START lifted it, black-box probe).
    /// </summary>
    public static bool RemoveOnOptIn(IDbConnection c, IDbTransaction? tx, string address, bool throughTwilio) =>
        c.Execute("DELETE FROM suppressions WHERE address = @Address AND (source = @Reply OR (@Twilio AND source = @TwilioSource))",
            new { Address = Key(address), Reply = Sources.Reply, Twilio = throughTwilio, TwilioSource = Sources.Twilio }, tx) > 0;

    /// <summary>Only a suppression that a reply made (a START lifts what a STOP did, never one added through the API or by Twilio).</summary>
    public static bool RemoveReplied(IDbConnection c, IDbTransaction? tx, string address) =>
        c.Execute("DELETE FROM suppressions WHERE address = @Address AND source = @Source", new { Address = Key(address), Source = Sources.Reply }, tx) > 0;

    public async Task<SuppressionRow?> GetAsync(string address, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return await c.QuerySingleOrDefaultAsync<SuppressionRow>(new CommandDefinition(
            "SELECT * FROM suppressions WHERE address = @Address", new { Address = Key(address) }, cancellationToken: ct));
    }

    /// <summary>Newest first (time added, then address); <paramref name="after"/> is the last row of the previous page.</summary>
    public async Task<IReadOnlyList<SuppressionRow>> ListAsync((long CreatedAt, string Address)? after, int limit, CancellationToken ct = default)
    {
        await using var c = await db.OpenAsync(ct);
        return (await c.QueryAsync<SuppressionRow>(new CommandDefinition(
            after is null
                ? "SELECT * FROM suppressions ORDER BY created_at DESC, address DESC LIMIT @Limit"
                : "SELECT * FROM suppressions WHERE (created_at, address) < (@At, @Address) ORDER BY created_at DESC, address DESC LIMIT @Limit",
            new { At = after?.CreatedAt, Address = after?.Address, Limit = limit }, cancellationToken: ct))).AsList();
    }

    /// <summary>Emails compare case-insensitively; phones are already E.164.</summary>
    public static string Key(string address) => address.Contains('@') ? address.Trim().ToLowerInvariant() : address.Trim();
}

/// <summary>STOP-style replies (US carrier and CTIA keywords), and START to opt back in.</summary>
public static class OptOutKeywords
{
    /// <summary>Twilio's default opt-out keywords (Advanced Opt-Out docs: STOP, UNSUBSCRIBE, END, QUIT, STOPALL, REVOKE, OPTOUT, CANCEL).</summary>
    private static readonly HashSet<string> Stop = new(StringComparer.OrdinalIgnoreCase) { "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT" };
    private static readonly HashSet<string> Start = new(StringComparer.OrdinalIgnoreCase) { "START", "UNSTOP" };

    public enum Kind { None, OptOut, OptIn }

    /// <summary>
    /// A reply that is one keyword, in any case, with nothing but punctuation, symbols or emoji around it ("Stop.", "STOP 🛑",
    /// "\"stop\""): single-word matching, as Twilio and the carriers do ("stop please" is not one; "STOP 🛑" was not either:
    /// black-box probe). Compatibility forms count as their letters (full-width "ＳＴＯＰ" from a CJK keyboard: NFKC), and a
    /// keyword written as two words or with a hyphen counts as the keyword: "STOP ALL" (Telnyx's default list has it beside
    /// STOPALL) and "OPT-OUT" / "opt out" (AWS End User Messaging's required list has OPT-OUT beside OPTOUT).
    /// </summary>
    public static Kind Classify(string? text)
    {
        var s = text ?? "";
        try
        {
            if (!s.IsNormalized(System.Text.NormalizationForm.FormKC))
                s = s.Normalize(System.Text.NormalizationForm.FormKC);
        }
        catch (ArgumentException)
        {
            // A lone surrogate (not valid UTF-16) cannot be normalised: read as it is.
        }
        int from = 0, to = s.Length;
        while (from < to && !char.IsLetterOrDigit(s[from]))
            from++;
        while (to > from && !char.IsLetterOrDigit(s[to - 1]))
            to--;
        var word = s[from..to];
        var kind = Of(word);
        if (kind != Kind.None)
            return kind;
        // Two words joined by one run of white space (a tab, a line break) or dashes (any: a phone turns "-" into "‐" or
        // "–"): "STOP ALL", "opt-out". "STOP STOP" and "stop please" join to no keyword, so they stay what they are.
        var gap = word.AsSpan().IndexOfAny(Joiners);
        if (gap <= 0)
            return Kind.None;
        var end = gap;
        while (end < word.Length && Joiners.Contains(word[end]))
            end++;
        var rest = word[end..];
        return rest.Length == 0 || rest.AsSpan().IndexOfAny(Joiners) >= 0 ? Kind.None : Of(string.Concat(word.AsSpan(0, gap), rest));
    }

    /// <summary>White space and the dashes (U+2010-2015, the minus sign) between the two words of a keyword.</summary>
    private static readonly System.Buffers.SearchValues<char> Joiners =
        System.Buffers.SearchValues.Create(" \t\n\r\v\f-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u3000");

    private static Kind Of(string word) => Stop.Contains(word) ? Kind.OptOut : Start.Contains(word) ? Kind.OptIn : Kind.None;
}
