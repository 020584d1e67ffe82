using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CsvHelper;
using CsvHelper.Configuration;
using Dapper;
using LineAgent.Api;
using LineAgent.Storage;
using Microsoft.Data.Sqlite;

namespace LineAgent.Leads;

public sealed record SkippedRow(long Row, string Reason);

public sealed record ImportResult(long Rows, long Created, long Updated, long Skipped, IReadOnlyList<SkippedRow> SkippedRows, bool SkippedRowsTruncated,
    IReadOnlyDictionary<string, string> Columns);

/// <summary>
/// CSV import (CsvHelper), streamed in two steps. First every row is read and checked, and the good ones are staged
/// in a TEMP table of the import's own connection (the main database is not written, so no lock is taken while the
/// upload is still arriving, and a 50,000-row file never sits in memory). Only once the whole file has arrived and
/// been read are the staged rows written, in transactions of <see cref="BatchSize"/> so that sends are not held up
/// behind one long import. An upload that is refused, cut off, abandoned, too large or not UTF-8 therefore stores
/// nothing. Common column names map to lead fields; any other column is kept in `fields`.
/// </summary>
public sealed partial class LeadImport(Db db, TimeProvider time)
{
    public const int BatchSize = 500;
    public const int MaxReportedSkips = 1000;

    private const string FieldsPrefix = "fields.";

    /// <summary>A wider header is refused before any row is read: every row would walk every column.</summary>
    public const int MaxColumns = 200;

    /// <summary>More line breaks than this inside one row is a quote left open, not a value spanning lines (an address).</summary>
    public const int MaxLinesInARow = 20;

    /// <summary>A skipped row's reason is cut here, so the report of 1,000 skips stays small whatever the rows hold.</summary>
    public const int MaxReasonLength = 500;

    private static readonly Dictionary<string, string> KnownColumns = new()
    {
        ["firstname"] = "firstName", ["first"] = "firstName", ["givenname"] = "firstName", ["fname"] = "firstName", ["forename"] = "firstName",
        ["lastname"] = "lastName", ["last"] = "lastName", ["surname"] = "lastName", ["familyname"] = "lastName", ["lname"] = "lastName",
        ["name"] = "name", ["fullname"] = "name", ["contactname"] = "name",
        ["phone"] = "phone", ["mobile"] = "phone", ["cell"] = "phone", ["cellphone"] = "phone", ["mobilephone"] = "phone",
        ["phonenumber"] = "phone", ["mobilenumber"] = "phone", ["tel"] = "phone", ["telephone"] = "phone", ["whatsapp"] = "phone",
        ["email"] = "email", ["emailaddress"] = "email", ["mail"] = "email", ["workemail"] = "email",
        ["company"] = "company", ["companyname"] = "company", ["organization"] = "company", ["organisation"] = "company",
        ["business"] = "company", ["account"] = "company", ["employer"] = "company",
        ["tags"] = "tags", ["tag"] = "tags", ["labels"] = "tags",
    };

    [GeneratedRegex("[^a-z0-9]")]
    private static partial Regex NonAlphanumeric();

    /// <summary>
    /// Why a row is a quote gone wrong rather than a value that spans lines (an address), with the lines it runs over; null
    /// for any other row. Read as RFC 4180 reads it: the row ends inside a quoted value (the quote ran to the end of the
    /// file), it runs over more than <see cref="MaxLinesInARow"/> lines, or a quoted value goes on after its closing quote
    /// (`"first` left open closes at the quote of a later row's `27" screen`: CsvHelper reads the rows between as part of
    /// the value and goes on, so they were neither imported nor reported: black-box probe). A quote inside an unquoted
    /// value (27" screen) is a character, as CsvHelper reads it.
    /// </summary>
    internal static (int Lines, bool Stray)? QuoteProblem(string raw, string delimiter)
    {
        var lines = raw.TrimEnd('\r', '\n').Split('\n').Length;
        var (open, stray) = ScanQuotes(raw, delimiter);
        return lines > MaxLinesInARow || open || stray ? (lines, stray && !open && lines <= MaxLinesInARow) : null;
    }

    /// <summary>Whether the row ends inside a quoted value, and whether a quoted value has text after its closing quote.</summary>
    private static (bool Open, bool Stray) ScanQuotes(string raw, string delimiter)
    {
        var inQuotes = false;
        var fieldStart = true;
        var stray = false;
        for (var i = 0; i < raw.Length; i++)
        {
            var c = raw[i];
            if (inQuotes)
            {
                if (c == '"')
                {
                    if (i + 1 < raw.Length && raw[i + 1] == '"') i++; // a doubled quote inside the value
                    else
                    {
                        inQuotes = false;
                        // After the closing quote: spaces (trimmed: CsvHelper's WhiteSpaceChars is a space only, and a tab may be
                        // the delimiter itself: review), then the delimiter or the end of the row.
                        var j = i + 1;
                        while (j < raw.Length && raw[j] == ' ' && delimiter != " ") j++;
                        if (j < raw.Length && raw[j] is not ('\r' or '\n') && !(delimiter.Length > 0 && string.CompareOrdinal(raw, j, delimiter, 0, delimiter.Length) == 0))
                            stray = true;
                    }
                }
                continue;
            }
            if (delimiter.Length > 0 && string.CompareOrdinal(raw, i, delimiter, 0, delimiter.Length) == 0)
            {
                fieldStart = true;
                i += delimiter.Length - 1;
                continue;
            }
            if (c is '\r' or '\n')
                fieldStart = true;
            else if (fieldStart && c == '"')
                (inQuotes, fieldStart) = (true, false);
            else if (!(fieldStart && c == ' ')) // spaces before a value's quote are trimmed (TrimOptions.Trim; a space only, as CsvHelper)
                fieldStart = false;
        }
        return (inQuotes, stray);
    }

    public static string? MapColumn(string header) => KnownColumns.GetValueOrDefault(NonAlphanumeric().Replace(header.ToLowerInvariant(), ""));

    public async Task<ImportResult> ImportAsync(TextReader text, string region, IReadOnlyList<string> extraTags, CancellationToken ct)
    {
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            DetectDelimiter = true, TrimOptions = TrimOptions.Trim, BadDataFound = null, MissingFieldFound = null, IgnoreBlankLines = true,
        };
        using var csv = new CsvReader(text, config);
        bool hasHeader;
        try
        {
            hasHeader = await csv.ReadAsync() && csv.ReadHeader();
        }
        catch (Exception e) when (e is DecoderFallbackException || e.InnerException is DecoderFallbackException)
        {
            // The first 64 KB are decoded at once: the bad byte may be in any of their rows.
            throw NotUtf8("in the first 64 KB");
        }
        if (!hasHeader || csv.HeaderRecord is not { Length: > 0 } header)
            throw new ImportRefusedException(new("file", "empty_file",
                "The CSV is empty: it needs a header row (such as first name, phone, email) and a row per lead. Nothing was imported."));
        if (header.Length > MaxColumns)
            throw new ImportRefusedException(new("file", "too_many_columns",
                $"The CSV header has {header.Length:N0} columns; at most {MaxColumns} (a lead keeps at most 100 fields). Nothing was imported."));
        if (header.Any(h => h.Contains('\0')))
            // UTF-16 without its byte-order mark: every other byte is NUL (probe: a 200 that skipped every row for NULs in the names).
            throw new ImportRefusedException(new("file", "invalid_encoding",
                "The file is not UTF-8 text: its header holds NUL characters, as UTF-16 without a byte-order mark does. Save it as \"CSV UTF-8\" and upload it again. Nothing was imported."));
        if (header.Any(h => h.Contains(NotUtf8Mark)))
            throw NotUtf8("in the header row");
        var names = UniqueHeaders(header.Select(LeadStore.FieldNameOf).ToList());
        // A column named fields.plan is the field plan, as a template names it ({{fields.plan}}): it was kept as a field named
        // "fields.plan", which {{fields.plan}} does not find (probe K). Only for a column that is no lead field of its own.
        var stripped = names.Select((h, i) => (Index: i, Header: h, Field: MapColumn(h)))
            .Select(c => (c.Index, c.Header, c.Field,
                Key: c.Field is null && c.Header.Length > FieldsPrefix.Length && c.Header.StartsWith(FieldsPrefix, StringComparison.OrdinalIgnoreCase)
                    ? c.Header[FieldsPrefix.Length..] : c.Header))
            .ToList();
        // plan and fields.plan in one file are two columns, each kept (plan, plan_2), not the later one over the other (review).
        var keys = UniqueHeaders(stripped.Select(c => c.Key).ToList());
        var columns = stripped.Select((c, i) => (c.Index, c.Header, c.Field, Key: keys[i])).ToList();
        if (!columns.Any(c => c.Field is "phone" or "email"))
            throw new ImportRefusedException(new("file", "no_contact_column",
                $"No column is a phone or an email, so no row could be a lead. The header has: {string.Join(", ", names.Take(20).Select(n => $"'{Api.Problems.Echo(n, 40)}'"))}" +
                $"{(names.Count > 20 ? ", ..." : "")}. Name the column phone, mobile, cell or tel, or email or e-mail. Nothing was imported."));
        var mapping = columns.ToDictionary(c => c.Header, c => c.Field ?? $"fields.{c.Key}");

        long rows = 0, created = 0, updated = 0, skipped = 0;
        var skips = new List<SkippedRow>();
        void Skip(long row, string reason)
        {
            skipped++;
            if (skips.Count < MaxReportedSkips)
                skips.Add(new SkippedRow(row, reason.Length <= MaxReasonLength ? reason : reason[..(MaxReasonLength - 1)] + "…"));
        }

        await using var c = await db.OpenAsync(ct);
        await c.ExecuteAsync("DROP TABLE IF EXISTS temp.import_rows; CREATE TEMP TABLE import_rows (id INTEGER PRIMARY KEY, row INTEGER NOT NULL, lead TEXT NOT NULL);");
        try
        {
            var staged = new List<(long Row, LeadValues Values)>(BatchSize);
            async Task StageAsync()
            {
                if (staged.Count == 0) return;
                // A deferred transaction that writes only the TEMP database: the main database is neither locked nor
                // written (BEGIN IMMEDIATE, the default here, would take main's write lock and wait on the writer).
                await using var tx = c.BeginTransaction(deferred: true);
                await c.ExecuteAsync("INSERT INTO temp.import_rows (row, lead) VALUES (@Row, @Lead)",
                    staged.Select(x => new { x.Row, Lead = JsonSerializer.Serialize(x.Values) }), tx);
                tx.Commit();
                staged.Clear();
            }

            try
            {
                await ReadRowsAsync(async (row, values) =>
                {
                    staged.Add((row, values));
                    if (staged.Count >= BatchSize)
                        await StageAsync();
                });
            }
            catch (Exception e) when (e is DecoderFallbackException || e.InnerException is DecoderFallbackException)
            {
                throw NotUtf8($"after row {csv.Parser.Row:N0}");
            }
            await StageAsync();

            // The whole file has arrived and been read: now write it. A client that leaves now does not stop it.
            long last = 0;
            while (true)
            {
                var chunk = (await c.QueryAsync<(long Id, long Row, string Lead)>(
                    "SELECT id AS Id, row AS Row, lead AS Lead FROM temp.import_rows WHERE id > @Last ORDER BY id LIMIT @Limit",
                    new { Last = last, Limit = BatchSize })).AsList();
                if (chunk.Count == 0)
                    break;
                await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(CancellationToken.None);
                foreach (var (_, row, lead) in chunk)
                    switch (await LeadStore.UpsertAsync(c, tx, JsonSerializer.Deserialize<LeadValues>(lead)!, Time.ToMs(time.GetUtcNow())))
                    {
                        case UpsertResult.Created: created++; break;
                        case UpsertResult.Merged: updated++; break;
                        case UpsertResult.Conflict conflict: Skip(row, $"matches two different leads: {conflict.Detail}"); break;
                    }
                await tx.CommitAsync(CancellationToken.None);
                last = chunk[^1].Id;
            }
        }
        finally
        {
            // The connection goes back to the pool: its TEMP table must not go with it.
            await c.ExecuteAsync("DROP TABLE IF EXISTS temp.import_rows");
        }
        return new ImportResult(rows, created, updated, skipped, skips, skipped > skips.Count, mapping);

        async Task ReadRowsAsync(Func<long, LeadValues, Task> good)
        {
            while (await csv.ReadAsync())
            {
                ct.ThrowIfCancellationRequested();
                rows++;
                var rowNumber = csv.Parser.Row;
                var raw = csv.Parser.RawRecord;
                // First: a bad byte in a row skipped for its quotes (or in the lines an unclosed quote swallowed) refuses the file too.
                if (raw.Contains(NotUtf8Mark))
                    throw NotUtf8($"on row {rowNumber:N0}");
                if (QuoteProblem(raw, csv.Parser.Delimiter) is { } quote)
                {
                    // A quote opened and never closed: CsvHelper reads on to the next quote or the end of the file.
                    Skip(rowNumber, quote switch
                    {
                        { Stray: true, Lines: 1 } => "A quoted value goes on after its closing quote (a quote inside a quoted value must be doubled: " +
                            "\"27\"\" screen\"). The row was not imported; fix the quotes and import the file again.",
                        { Stray: true } => $"The row opens a quote that is not closed where it should be: it runs over {quote.Lines:N0} lines, up to a " +
                            "quote in a later line, and the rows in them were read as part of it, not imported. Close the quote (or double a quote " +
                            "inside a value) and import the file again.",
                        _ => $"The row opens a quote that is not closed: it runs over {quote.Lines:N0} lines, and the rows in them " +
                            "were read as part of it, not imported. Close the quote (or double a quote inside a value) and import the file again.",
                    });
                    continue;
                }
                var extra = Enumerable.Range(header.Length, Math.Max(0, csv.Parser.Count - header.Length)).Count(i => !string.IsNullOrWhiteSpace(csv.Parser[i]));
                if (extra > 0)
                {
                    Skip(rowNumber, $"The row has {csv.Parser.Count:N0} cells and the header {header.Length:N0}: {extra:N0} cell(s) have no column. Fix the row (a comma inside a value needs quotes).");
                    continue;
                }
                string? first = null, last = null, name = null, phone = null, email = null, company = null;
                var fields = new Dictionary<string, string?>();
                var tags = new List<string>(extraTags);
                foreach (var col in columns)
                {
                    var value = csv.GetField(col.Index);
                    if (string.IsNullOrWhiteSpace(value)) continue;
                    switch (col.Field)
                    {
                        case "firstName": first = value; break;
                        case "lastName": last = value; break;
                        case "name": name = value; break;
                        // Several phone (email) columns: the first filled one is the lead's (Phone empty, Mobile filled:
                        // Mobile), and another number in the same row is kept as a field under its header, not dropped.
                        case "phone" when phone is null: phone = value; break;
                        case "email" when email is null: email = value; break;
                        case "phone" or "email": fields[col.Header] = value; break;
                        case "company": company = value; break;
                        case "tags": tags.AddRange(value.Split([';', ',', '|'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)); break;
                        default: fields[col.Key] = value; break;
                    }
                }
                if (first is null && last is null && name is not null)
                {
                    var parts = name.Split(' ', 2, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                    first = parts.ElementAtOrDefault(0);
                    last = parts.ElementAtOrDefault(1);
                }

                var (values, problems) = LeadStore.Validate(new LeadInput
                {
                    FirstName = first, LastName = last, Phone = phone, Email = email, Company = company, Fields = fields, Tags = tags,
                }, region, partial: false);
                if (values is null)
                    Skip(rowNumber, string.Join(" ", problems.Select(p => p.Detail)));
                else
                    await good(rowNumber, values);
            }
        }
    }

    private static ImportRefusedException NotUtf8(string where) => new(new("file", "invalid_encoding",
        $"The file is not UTF-8 text (an invalid byte {where}). Save it as \"CSV UTF-8\" and upload it again. Nothing was imported."));

    /// <summary>
    /// What an invalid byte decodes to (a noncharacter, never in text): the row it is in is then the row that holds it. A
    /// decoder that threw read 64 KB ahead, so the error named a row thousands of lines before the bad byte (probe).
    /// </summary>
    internal const char NotUtf8Mark = '\uFDD0';

    /// <summary>Strict UTF-8 for an upload: an invalid byte becomes <see cref="NotUtf8Mark"/>, and the import refuses the file at its row.</summary>
    public static readonly Encoding Utf8Marked = Encoding.GetEncoding("utf-8", EncoderFallback.ExceptionFallback, new DecoderReplacementFallback(NotUtf8Mark.ToString()));

    /// <summary>Spreadsheet exports repeat and leave out header names: make every column's name unique.</summary>
    public static IReadOnlyList<string> UniqueHeaders(IReadOnlyList<string> header)
    {
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var nextSuffix = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase); // a name repeated n times costs n, not n²
        var names = new List<string>(header.Count);
        for (var i = 0; i < header.Count; i++)
        {
            var name = string.IsNullOrWhiteSpace(header[i]) ? $"column_{i + 1}" : header[i].Trim();
            var unique = name;
            if (!seen.Add(unique))
            {
                var n = nextSuffix.GetValueOrDefault(name, 2);
                do unique = $"{name}_{n++}"; while (!seen.Add(unique));
                nextSuffix[name] = n;
            }
            names.Add(unique);
        }
        return names;
    }
}

/// <summary>An upload refused as a whole (before anything is stored); the endpoint answers 400 with the problem.</summary>
public sealed class ImportRefusedException(FieldProblem problem) : Exception(problem.Detail)
{
    public FieldProblem Problem { get; } = problem;
}
