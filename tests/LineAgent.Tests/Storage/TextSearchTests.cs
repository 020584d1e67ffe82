using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Storage;

/// <summary>
/// History search (<c>q</c>): every word must occur in the content or the recipient's name, as a word or the beginning
/// of one. A plain word is searched as the index terms it begins (read from messages_fts_vocab, migration 009) joined
/// by OR, which FTS5 reads newest first and stops at the page; anything else stays an FTS5 prefix term. Both must
/// find the same rows.
/// </summary>
public sealed class TextSearchTests : LifecycleTestBase
{
    private readonly Dictionary<string, string> _ids = new();

    private readonly List<MessageRow> _rows = [];

    private void Add(string name, string content, string? recipientName = null)
    {
        var now = Time.ToMs(_time.GetUtcNow());
        var row = new MessageRow
        {
            Id = Ids.New("msg", _time.GetUtcNow()), Content = content, Type = MessageType.Sms, RequestedType = MessageType.Sms,
            Status = MessageStatus.Scheduled, LineId = "default", RecipientPhone = "+12025550100", RecipientName = recipientName,
            ScheduledAt = now + 60_000, DueAt = now + 60_000, CreatedAt = now, UpdatedAt = now,
        };
        _rows.Add(row);
        _ids[name] = row.Id;
        _time.Advance(TimeSpan.FromSeconds(1));
    }

    [SetUp]
    public async Task SeedAsync()
    {
        _rows.Clear();
        _ids.Clear();
        Add("march", "Your invoice for March is attached");
        Add("plural", "Two invoices are due");
        Add("invoicing", "Invoicing starts Monday", recipientName: "Ines Invoiceson");
        Add("cafe-accent", "Meet at the café?");
        Add("cafe-plain", "The Cafe opens at 8");
        Add("email", "Please e-mail me the quote");
        Add("other", "Nothing to see");
        Add("buzz", "Buzz me at 10am");
        Add("digits", "Call 9090 or 90901 now");
        Add("keywords", "cats AND dogs OR birds NEAR");
        Add("emoji", "Party time \U0001F389 tonight");
        Add("emoji-name", "Hello", recipientName: "Ana \U0001F338");
        Add("japanese", "明日の会議は10時です");
        Add("chinese", "今天天气很好", recipientName: "王小明");
        // 40 different words beginning with "zor": more longer terms than one word is searched as (16).
        for (var i = 0; i < 40; i++)
            Add($"zor{i}", $"zor{(char)('a' + i / 26)}{(char)('a' + i % 26)} reading");
        await _lifecycle.AcceptAsync(_rows); // one unit: accepted in this order, so seq (newest first) follows it
        await _writer.CatchUpAsync(MessageStore.SearchIndex); // as a search does (the match expressions read the index's terms)
    }

    private async Task<string[]> SearchAsync(string q, int limit = 500)
    {
        var (rows, _) = await new MessageHistory(_db, _writer, Microsoft.Extensions.Logging.Abstractions.NullLogger<MessageHistory>.Instance).PageAsync(new MessageFilter { Q = q, Limit = limit }, CancellationToken.None);
        return rows.Select(r => _ids.Single(kv => kv.Value == r.Id).Key).ToArray();
    }

    [TestCase("invoice", new[] { "invoicing", "plural", "march" }, Description = "the recipient's name begins with it too")]
    [TestCase("INVOICES", new[] { "invoicing", "plural" })]
    [TestCase("invoic", new[] { "invoicing", "plural", "march" })]
    [TestCase("invoice march", new[] { "march" })]
    [TestCase("march invoice", new[] { "march" })]
    [TestCase("invoices march", new string[0])]
    [TestCase("café", new[] { "cafe-plain", "cafe-accent" })]
    [TestCase("cafe", new[] { "cafe-plain", "cafe-accent" })]
    [TestCase("e-mail", new[] { "email" })]
    [TestCase("quote\"", new[] { "email" })]
    [TestCase("Th", new[] { "email", "cafe-plain", "cafe-accent" })]
    [TestCase("invoicesx", new string[0])]
    [TestCase("buz", new[] { "buzz" }, Description = "the range's end past a z")]
    [TestCase("909", new[] { "digits" }, Description = "digits, and the range's end past a 9")]
    [TestCase("9090", new[] { "digits" })]
    [TestCase("10a", new[] { "buzz" })]
    [TestCase("AND OR NEAR", new[] { "keywords" }, Description = "FTS5 keywords are words here")]
    [TestCase("near cats", new[] { "keywords" })]
    public async Task Search_ShouldFindEachWordAsAWordOrItsBeginning_NewestFirst(string q, string[] expected)
    {
        Assert.That(await SearchAsync(q), Is.EqualTo(expected));
        Assert.That(await PrefixSearchAsync(q), Is.EqualTo(expected), "the same rows as every word as an FTS5 prefix term");
    }

    /// <summary>
    /// A word without a letter or digit is no term of the index (unicode61 drops it); FTS5 found nothing for a query
    /// with one, so "party 🎉" found nothing. Such words are looked for as text in the content and the name.
    /// </summary>
    [TestCase("\U0001F389", new[] { "emoji" })]
    [TestCase("party \U0001F389", new[] { "emoji" })]
    [TestCase("\U0001F389 PARTY", new[] { "emoji" })]
    [TestCase("\U0001F338", new[] { "emoji-name" })]
    [TestCase("\U0001F389 \U0001F338", new string[0], Description = "every word must occur")]
    [TestCase("\U0001F389 nothing", new string[0])]
    [TestCase("?", new[] { "cafe-accent" })]
    [TestCase("会議", new[] { "japanese" }, Description = "a word inside unspaced text: one term of the index")]
    [TestCase("明日", new[] { "japanese" })]
    [TestCase("10時", new[] { "japanese" })]
    [TestCase("天气", new[] { "chinese" })]
    [TestCase("小明", new[] { "chinese" }, Description = "in the name")]
    [TestCase("天气 hello", new string[0])]
    public async Task AWordWithoutLettersOrDigits_OrInUnspacedText_ShouldBeFoundAsText(string q, string[] expected) =>
        Assert.That(await SearchAsync(q), Is.EqualTo(expected));

    /// <summary>
    /// A text scan reads at most TextScanSpan positions per page: pages may come back short, even empty, with a next
    /// position, and walking them finds every match once and then ends.
    /// </summary>
    [TestCase("\U0001F389", new[] { "emoji" })]
    [TestCase("?", new[] { "cafe-accent" })]
    [TestCase("\U0001F984", new string[0])]
    public async Task ATextScan_ShouldReadABoundedSpanPerPage_AndItsPagesFindEveryMatchOnce(string q, string[] expected)
    {
        var history = new MessageHistory(_db, _writer, Microsoft.Extensions.Logging.Abstractions.NullLogger<MessageHistory>.Instance);
        var found = new List<string>();
        long? before = null;
        var pages = 0;
        do
        {
            var (rows, next) = await history.PageAsync(new MessageFilter { Q = q, Limit = 50, TextScanSpan = 5, Before = before }, CancellationToken.None);
            Assert.That(rows.Count, Is.LessThanOrEqualTo(5), "no more than the span");
            found.AddRange(rows.Select(r => _ids.Single(kv => kv.Value == r.Id).Key));
            before = next;
            pages++;
        } while (before is not null && pages < 100);
        Assert.That(found, Is.EqualTo(expected));
        Assert.That(before, Is.Null, "the walk ends");

        // Narrowed to a batch (its own index), the search is one page, whatever the span.
        var (inBatch, after) = await history.PageAsync(new MessageFilter { Q = q, BatchId = "batch_none", Limit = 50, TextScanSpan = 5 }, CancellationToken.None);
        Assert.That((inBatch, after), Is.EqualTo((new List<MessageRow>(), (long?)null)));
        Assert.That(pages, Is.GreaterThanOrEqualTo((int)Math.Ceiling(_rows.Count / 5.0)), "one page per span of positions at least");
    }

    /// <summary>The search as it was before the vocabulary: every word an FTS5 prefix term.</summary>
    private async Task<string[]> PrefixSearchAsync(string q)
    {
        var match = string.Join(" ", q.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(w => "\"" + w.Replace("\"", "\"\"") + "\"*"));
        await using var c = await _db.OpenAsync();
        var ids = await c.QueryAsync<string>(
            "SELECT m.id FROM messages m JOIN messages_fts f ON f.rowid = m.seq WHERE messages_fts MATCH @Match ORDER BY f.rowid DESC", new { Match = match });
        return ids.Select(id => _ids.Single(kv => kv.Value == id).Key).ToArray();
    }

    [Test]
    public async Task AWordBeginningMoreTermsThanAreLookedUp_ShouldStillFindEveryRow()
    {
        var expected = Enumerable.Range(0, 40).Reverse().Select(i => $"zor{i}").ToArray();
        Assert.That(await SearchAsync("zor"), Is.EqualTo(expected));
        Assert.That(await SearchAsync("zor reading"), Is.EqualTo(expected));
        Assert.That(await SearchAsync("zorb", limit: 3), Is.EqualTo(new[] { "zor39", "zor38", "zor37" }), "14 terms, looked up; newest first");
    }

    /// <summary>What MATCH is given: the terms a plain word begins, or the prefix term where that does not apply.</summary>
    [TestCase("invoice", "(\"invoice\" OR \"invoices\" OR \"invoiceson\")")]
    [TestCase("Invoice March", "(\"invoice\" OR \"invoices\" OR \"invoiceson\") AND (\"march\")")]
    [TestCase("zorb", "(\"zorb\" OR \"zorba\" OR \"zorbb\" OR \"zorbc\" OR \"zorbd\" OR \"zorbe\" OR \"zorbf\" OR \"zorbg\" OR \"zorbh\" OR \"zorbi\" OR \"zorbj\" OR \"zorbk\" OR \"zorbl\" OR \"zorbm\" OR \"zorbn\")")]
    [TestCase("zor", "\"zor\"*")]
    [TestCase("nomatch", "(\"nomatch\")")]
    [TestCase("in", "\"in\"*")]
    [TestCase("café", "\"café\"*")]
    [TestCase("see \"hi\"", "(\"see\") AND \"\"\"hi\"\"\"*")]
    public async Task MatchExpression_ShouldBeTheTermsAPlainWordBegins(string q, string expected)
    {
        var p = new DynamicParameters();
        var expression = MessageFilter.FtsMatch(q, p);
        await using var c = await _db.OpenAsync();
        Assert.That(await c.ExecuteScalarAsync<string>("SELECT " + expression, p), Is.EqualTo(expected));
    }
}
