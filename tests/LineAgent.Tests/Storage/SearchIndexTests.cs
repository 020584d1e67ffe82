using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The writer adds new messages to both full-text indexes in batches (no insert trigger, migration 008; not at every
/// commit, MessageStore.SearchIndex): 1,000 at a time, after its idle time, and before a search is read. Whatever the
/// grouping, a content change or a refused unit in the same group, both indexes must then hold exactly the rows of
/// the table: FTS5's own integrity-check compares them with it.
/// </summary>
public sealed class SearchIndexTests : LifecycleTestBase
{
    private MessageRow Row(string content, string phone, string? id = null)
    {
        var now = Time.ToMs(_time.GetUtcNow());
        return new MessageRow
        {
            Id = id ?? Ids.New("msg", _time.GetUtcNow()), Content = content, Type = MessageType.IMessage, RequestedType = MessageType.Auto,
            Status = MessageStatus.Scheduled, LineId = "default", RecipientPhone = phone, RecipientName = "Ada Lovelace",
            ScheduledAt = now + 60_000, DueAt = now + 60_000, CreatedAt = now, UpdatedAt = now,
        };
    }

    [Test]
    public async Task GroupedInserts_AContentChange_AndARefusedUnit_ShouldLeaveBothIndexesExactlyInStepWithTheTable()
    {
        var earlier = (await _lifecycle.AcceptAsync([Row("walrus at noon", "+12025550100")]))[0];
        var duplicate = earlier.Id;

        // A slow first unit so the next ones queue behind it and are written as one group.
        var slow = _lifecycle.AcceptAsync(Enumerable.Range(0, 150).Select(i => Row($"bulk note {i}", $"+120255502{i % 100:D2}")).ToList());
        var singles = Enumerable.Range(0, 40).Select(i => _lifecycle.AcceptAsync([Row($"pelican {i} says hello", $"+120255503{i:D2}")])).ToList();
        var reschedule = _lifecycle.RescheduleAsync(earlier.Id, "zebra crossing", null, null, "content changed");
        var refused = _lifecycle.AcceptAsync([Row("never stored", "+12025550999", id: duplicate)]);
        var after = Enumerable.Range(0, 10).Select(i => _lifecycle.AcceptAsync([Row($"heron {i}", $"+120255504{i:D2}")])).ToList();

        await slow;
        await Task.WhenAll(singles);
        Assert.That(await reschedule, Is.Not.Null);
        Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(async () => await refused, "a second row with the same id");
        await Task.WhenAll(after);
        var (commits, units) = _writer.Counters;
        TestContext.Out.WriteLine($"{units} units in {commits} commits");
        Assert.That(units, Is.GreaterThan(commits), "some units shared a transaction");
        await _writer.CatchUpAsync(MessageStore.SearchIndex);
        Assert.That(_writer.OwedRows, Is.Zero);

        await using var c = await _db.OpenAsync();
        // Raises SQLITE_CORRUPT_VTAB if an index holds a row the table does not, or misses one it does.
        await c.ExecuteAsync("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");
        await c.ExecuteAsync("INSERT INTO messages_recipients_fts(messages_recipients_fts, rank) VALUES ('integrity-check', 1)");
        Assert.That(await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages"), Is.EqualTo(1 + 150 + 40 + 10));
        Assert.That(await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages_fts_docsize"), Is.EqualTo(201));
        Assert.That(await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages_recipients_fts_docsize"), Is.EqualTo(201));

        async Task<long> Matches(string table, string query) =>
            await c.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM {table} WHERE {table} MATCH @Q", new { Q = query });
        Assert.That(await Matches("messages_fts", "pelican"), Is.EqualTo(40));
        Assert.That(await Matches("messages_fts", "heron"), Is.EqualTo(10));
        Assert.That(await Matches("messages_fts", "bulk"), Is.EqualTo(150));
        Assert.That(await Matches("messages_fts", "zebra"), Is.EqualTo(1), "the new content is found");
        Assert.That(await Matches("messages_fts", "walrus"), Is.Zero, "the old content is gone");
        Assert.That(await Matches("messages_fts", "stored"), Is.Zero, "the refused row is in no index");
        Assert.That(await Matches("messages_recipients_fts", "\"2025550403\""), Is.EqualTo(1), "a phone substring");
    }

    private async Task<long> CountAsync(string sql)
    {
        await using var c = await _db.OpenAsync();
        return await c.ExecuteScalarAsync<long>(sql);
    }

    private async Task IntegrityCheckAsync()
    {
        await using var c = await _db.OpenAsync();
        // Raises SQLITE_CORRUPT_VTAB if an index holds a row the table does not, or misses one it does.
        await c.ExecuteAsync("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");
        await c.ExecuteAsync("INSERT INTO messages_recipients_fts(messages_recipients_fts, rank) VALUES ('integrity-check', 1)");
    }

    [Test]
    public async Task AMessageJustAnswered_ShouldBeFoundByASearch_AndAnIdleWriterIndexesItAnyway()
    {
        await _lifecycle.AcceptAsync([Row("osprey over the lake", "+12025550111")]);
        Assert.That(_writer.OwedRows, Is.EqualTo(1), "one commit does not index");
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages_fts_docsize"), Is.Zero);

        var history = new MessageHistory(_db, _writer, Microsoft.Extensions.Logging.Abstractions.NullLogger<MessageHistory>.Instance);
        var (found, _) = await history.PageAsync(new MessageFilter { Q = "osprey", Limit = 10 }, CancellationToken.None);
        Assert.That(found.Select(r => r.Content), Is.EqualTo(new[] { "osprey over the lake" }), "the search caught the index up first");
        var (byPhone, _) = await history.PageAsync(new MessageFilter { Recipient = "5550111", Limit = 10 }, CancellationToken.None);
        Assert.That(byPhone, Has.Count.EqualTo(1));
        Assert.That(_writer.OwedRows, Is.Zero);

        await _lifecycle.AcceptAsync([Row("kestrel at dawn", "+12025550112")]);
        Assert.That(_writer.OwedRows, Is.EqualTo(1));
        // No search: the writer indexes it once it has had nothing else to do for a second.
        await Eventually.TrueAsync(async () => _writer.OwedRows == 0 && await CountAsync("SELECT COUNT(*) FROM messages_fts_docsize") == 2,
            "the idle writer to index the second message");
        await IntegrityCheckAsync();
    }

    [Test]
    public async Task ASearchWhoseCatchUpFails_ShouldAnswerFromTheIndexAsItIs_AndLaterOnesCatchUp()
    {
        await _lifecycle.AcceptAsync([Row("grebe on the pond", "+12025550131")]);
        var history = new MessageHistory(_db, _writer, Microsoft.Extensions.Logging.Abstractions.NullLogger<MessageHistory>.Instance);
        async Task<int> FoundAsync() => (await history.PageAsync(new MessageFilter { Q = "grebe", Limit = 10 }, CancellationToken.None)).Rows.Count;

        // The writer's connection may not write (SQLITE_READONLY), as with a disk that refuses writes.
        await _writer.WriteAsync(s => s.Connection.Execute("PRAGMA query_only = 1", transaction: s.Transaction));
        Assert.That(await FoundAsync(), Is.Zero, "answered, from the index as it was");
        Assert.That(_writer.OwedRows, Is.EqualTo(1), "still owed");

        // Writable again: the refused BEGIN put the writer's connection back in the pool, which is emptied here, so the
        // writer's next connection is a new one.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Assert.That(await FoundAsync(), Is.EqualTo(1));
        Assert.That(_writer.OwedRows, Is.Zero);
        await IntegrityCheckAsync();
    }

    [Test]
    public async Task AThousandOwedRows_ShouldBeIndexed_AndLeaveASoundIndex()
    {
        // When a batch is done rather than how soon: DeferredWorkTests (a batch does not wait for the idle time).
        var rows = Enumerable.Range(0, 1_200).Select(i => Row($"swift {i}", $"+1202555{i:D4}")).ToList();
        await _lifecycle.AcceptAsync(rows);
        await Eventually.TrueAsync(async () => _writer.OwedRows == 0 && await CountAsync("SELECT COUNT(*) FROM messages_fts_docsize") == 1_200,
            "the writer to index a full batch");
        await IntegrityCheckAsync();
    }

    [Test]
    public async Task ARowChangedOrDeletedBeforeItIsIndexed_ShouldKeepTheIndexSound()
    {
        // Before migration 011 the update and delete triggers asked FTS5 to delete a row it did not hold: a corrupt index.
        var kept = (await _lifecycle.AcceptAsync([Row("plover on the shore", "+12025550121")]))[0];
        var gone = (await _lifecycle.AcceptAsync([Row("curlew in the marsh", "+12025550122")]))[0];
        Assert.That(_writer.OwedRows, Is.EqualTo(2));
        await using (var c = await _db.OpenAsync())
        {
            await c.ExecuteAsync("UPDATE messages SET content = 'sandpiper instead', recipient_name = 'Grace Hopper', recipient_phone = '+12025550199' WHERE id = @Id",
                new { kept.Id });
            await c.ExecuteAsync("DELETE FROM message_events WHERE message_id = @Id; DELETE FROM messages WHERE id = @Id", new { gone.Id });
        }

        await _writer.CatchUpAsync(MessageStore.SearchIndex);
        await IntegrityCheckAsync();
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'sandpiper'"), Is.EqualTo(1), "indexed with its new text");
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'plover OR curlew'"), Is.Zero);
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages_recipients_fts WHERE messages_recipients_fts MATCH '\"5550199\"'"), Is.EqualTo(1));

        // Once indexed, a change and a delete still go through the triggers.
        await using (var c = await _db.OpenAsync())
        {
            await c.ExecuteAsync("UPDATE messages SET content = 'turnstone now' WHERE id = @Id", new { kept.Id });
            await IntegrityCheckAsync();
            await c.ExecuteAsync("DELETE FROM message_events WHERE message_id = @Id; DELETE FROM messages WHERE id = @Id", new { kept.Id });
        }
        await IntegrityCheckAsync();
        Assert.That(await CountAsync("SELECT COUNT(*) FROM messages_fts_docsize"), Is.Zero);
    }

    /// <summary>A message row put into the table by hand (not through the writer, so in no full-text index yet).</summary>
    private async Task InsertByHandAsync(long dueAt)
    {
        await using var c = await _db.OpenAsync();
        await c.ExecuteAsync("""
            INSERT INTO messages (id, content, type, requested_type, status, line_id, recipient_phone, due_at, created_at, updated_at)
            VALUES ('msg_by_hand', 'typed by hand', 'sms', 'auto', 'scheduled', 'default', '+12025550123', @DueAt, 1, 1)
            """, new { DueAt = dueAt });
    }

    [Test]
    public async Task ARowWrittenOutsideTheAgent_ShouldBeIndexedAtTheNextStart_SoChangingItKeepsTheIndexSound()
    {
        await InsertByHandAsync(dueAt: 1);

        var db = DatabaseStartup.Open(_db.Path, new StorageOptions(), TimeProvider.System, NullLogger.Instance);

        await using var conn = await db.OpenAsync();
        Assert.That(await conn.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'hand'"), Is.EqualTo(1));
        await conn.ExecuteAsync("UPDATE messages SET content = 'changed later' WHERE id = 'msg_by_hand'"); // the update trigger deletes what was indexed
        await conn.ExecuteAsync("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");
        await conn.ExecuteAsync("INSERT INTO messages_recipients_fts(messages_recipients_fts, rank) VALUES ('integrity-check', 1)");
        Assert.That(await conn.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'later'"), Is.EqualTo(1));
    }

    [Test]
    public async Task EditingARowPutInByHandWhileTheAgentRuns_ShouldKeepTheIndexSound()
    {
        await InsertByHandAsync(dueAt: 9999999999999);

        Assert.That(await _lifecycle.RescheduleAsync("msg_by_hand", "edited through the agent", null, null, "content changed"), Is.Not.Null);
        Assert.That(_writer.OwedRows, Is.EqualTo(1), "the edit owes the row to the index");
        await _writer.CatchUpAsync(MessageStore.SearchIndex); // as a search does

        await using var conn = await _db.OpenAsync();
        await conn.ExecuteAsync("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");
        Assert.That(await conn.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'edited'"), Is.EqualTo(1));
        Assert.That(await conn.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'hand'"), Is.Zero);
    }
}
