using System.Reflection;
using Dapper;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Tests.Support;
using Microsoft.Data.Sqlite;

namespace LineAgent.Tests.Storage;

/// <summary>
/// The writer's per-message statements bind by position from the row's properties (no SqliteCommand): every column
/// the INSERT names must arrive as it was given, NULLs as NULL, and SQLite's errors must come back as the
/// <see cref="SqliteException"/> a command would throw, with the writer still usable after them.
/// </summary>
public sealed class WriterStatementTests : LifecycleTestBase
{
    private static MessageRow EveryFieldSet(string id) => new()
    {
        Id = id, Direction = "outbound", Content = "Hi Ana — ünïcode ✓ and 'quotes'", Subject = "A subject", Type = MessageType.Email,
        RequestedType = MessageType.Auto, Status = MessageStatus.Scheduled, Delivery = LineAgent.Messages.Delivery.Read, LineId = "mac-1", LeadId = "lead_1",
        BatchId = "batch_1", RecipientPhone = "+14155550100", RecipientEmail = "ana@example.com", RecipientName = "Ana Example",
        ScheduledAt = 1_900_000_000_123, ScheduleTimeZone = "Europe/Berlin", DueAt = 1_900_000_000_123, NotBefore = 1_900_000_000_456,
        SentAt = 1_800_000_000_001, CreatedAt = 1_700_000_000_002, UpdatedAt = 1_700_000_000_003, FallbackFrom = "msg_a", RetryOf = "msg_b",
        ReplyTo = "msg_c", ErrorCode = "some_code", ErrorMessage = "some message", DryRun = true, Channel = "dry-run", ChannelRef = "ref-1",
        StopOnReply = true, SequenceId = "seq_1", SequenceStep = 2, FollowUpAfter = 172_800_000, RecipientWindow = "{\"from\":\"09:00\"}",
        RecipientTimeZone = "America/New_York", RecipientTimeZoneSource = "phone",
    };

    private async Task<MessageRow> ReadAsync(string id)
    {
        await using var c = await _db.OpenAsync();
        return await c.QuerySingleAsync<MessageRow>("SELECT * FROM messages WHERE id = @Id", new { Id = id });
    }

    [Test]
    public async Task Insert_ShouldStoreEveryNamedColumnAsGiven()
    {
        var row = EveryFieldSet("msg_all");
        await _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(row));

        var stored = await ReadAsync("msg_all");
        var named = System.Text.RegularExpressions.Regex.Matches(MessageSql.InsertWithoutReturning, @"@(\w+)").Select(m => m.Groups[1].Value).ToList();
        Assert.That(named, Has.Count.GreaterThan(30));
        foreach (var name in named)
        {
            var p = typeof(MessageRow).GetProperty(name, BindingFlags.Public | BindingFlags.Instance)!;
            Assert.That(p.GetValue(stored), Is.EqualTo(p.GetValue(row)), name);
        }
    }

    [Test]
    public async Task Insert_ShouldStoreNullsAsNull()
    {
        var row = new MessageRow
        {
            Id = "msg_min", Content = "x", Type = MessageType.Sms, RequestedType = MessageType.Sms, Status = MessageStatus.Queued,
            LineId = "default", DueAt = 1, CreatedAt = 1, UpdatedAt = 1,
        };
        await _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(row));

        await using var c = await _db.OpenAsync();
        var nulls = await c.QuerySingleAsync<long>(
            "SELECT (subject IS NULL) + (lead_id IS NULL) + (recipient_phone IS NULL) + (scheduled_at IS NULL) + (sequence_step IS NULL) FROM messages WHERE id = 'msg_min'");
        Assert.That(nulls, Is.EqualTo(5));
        Assert.That((await ReadAsync("msg_min")).DryRun, Is.False);
    }

    /// <summary>
    /// The statement is prepared once and reset between rows, which keeps the last row's bindings: a row with empty
    /// columns after one with every column set must not inherit its values.
    /// </summary>
    [Test]
    public async Task ARowAfterAFullOne_ShouldNotInheritItsValues()
    {
        var minimal = new MessageRow
        {
            Id = "msg_after", Content = "x", Type = MessageType.Sms, RequestedType = MessageType.Sms, Status = MessageStatus.Queued,
            LineId = "default", DueAt = 1, CreatedAt = 1, UpdatedAt = 1,
        };
        await _writer.WriteAsync(s =>
        {
            s.Statement(MessageSql.InsertWithoutReturning).Execute(EveryFieldSet("msg_before"));
            return s.Statement(MessageSql.InsertWithoutReturning).Execute(minimal);
        });

        var stored = await ReadAsync("msg_after");
        var named = System.Text.RegularExpressions.Regex.Matches(MessageSql.InsertWithoutReturning, @"@(\w+)").Select(m => m.Groups[1].Value).ToList();
        foreach (var name in named)
        {
            var p = typeof(MessageRow).GetProperty(name, BindingFlags.Public | BindingFlags.Instance)!;
            Assert.That(p.GetValue(stored), Is.EqualTo(p.GetValue(minimal)), name);
        }
        Assert.That(stored.Subject, Is.Null);
    }

    /// <summary>An empty text stays an empty text (an empty span would bind NULL): a reply with only an attachment has content "".</summary>
    [Test]
    public async Task EmptyStrings_ShouldStayEmptyText()
    {
        var row = EveryFieldSet("msg_empty");
        row.Content = "";
        row.Subject = "";
        row.RecipientName = "";
        await _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(row));

        await using var c = await _db.OpenAsync();
        var types = await c.QuerySingleAsync<(string Content, string Subject, string Name)>(
            "SELECT typeof(content), typeof(subject), typeof(recipient_name) FROM messages WHERE id = 'msg_empty'");
        Assert.That(types, Is.EqualTo(("text", "text", "text")));
        Assert.That((await ReadAsync("msg_empty")).Content, Is.EqualTo(""));
    }

    [Test]
    public void MoreThanOneStatement_OrAnUnnamedParameter_ShouldBeRefused()
    {
        var twice = Assert.ThrowsAsync<ArgumentException>(() => _writer.WriteAsync(s =>
            s.Statement("INSERT INTO message_events (message_id, at, status) VALUES (@MessageId, @At, @Status); DELETE FROM message_events")
                .Execute(new MessageEventRow { MessageId = "m", At = 1, Status = "sent" })));
        Assert.That(twice!.Message, Does.Contain("DELETE FROM message_events"));
        var unnamed = Assert.ThrowsAsync<InvalidOperationException>(() => _writer.WriteAsync(s =>
            s.Statement("INSERT INTO message_events (message_id, at, status) VALUES (@MessageId, @At, ?)")
                .Execute(new MessageEventRow { MessageId = "m", At = 1, Status = "sent" })));
        Assert.That(unnamed!.Message, Does.Contain("Parameter 3 has no name"));
    }

    [Test]
    public async Task ConstraintFailure_ShouldThrowSqliteException_AndTheWriterGoesOn()
    {
        await _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(EveryFieldSet("msg_dup")));

        var e = Assert.ThrowsAsync<SqliteException>(() => _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(EveryFieldSet("msg_dup"))));
        Assert.That(e!.SqliteErrorCode, Is.EqualTo(19), e.Message);
        Assert.That(e.SqliteExtendedErrorCode, Is.EqualTo(2067), e.Message); // SQLITE_CONSTRAINT_UNIQUE
        Assert.That(e.Message, Does.Contain("UNIQUE constraint failed: messages.id"));

        // The statement was reset: the next unit uses it again and commits.
        await _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(EveryFieldSet("msg_next")));
        await using var c = await _db.OpenAsync();
        Assert.That(await c.QuerySingleAsync<long>("SELECT COUNT(*) FROM messages"), Is.EqualTo(2));
    }

    private static MessageRow Minimal(string id) => new()
    {
        Id = id, Content = "x", Type = MessageType.Sms, RequestedType = MessageType.Sms, Status = MessageStatus.Queued,
        LineId = "default", DueAt = 1, CreatedAt = 1, UpdatedAt = 1,
    };

    /// <summary>
    /// Several rows per statement: row k's copy of each parameter is bound from row k, full rows and empty ones alternating
    /// (a copy must not take a neighbour's value, nor a value left bound by the run before), in the order given.
    /// </summary>
    [Test]
    public async Task SeveralRowsPerStatement_ShouldStoreEachRowAsGiven_InOrder()
    {
        var rows = Enumerable.Range(0, 10).Select(i =>
        {
            var row = i % 3 == 0 ? Minimal($"msg_{i:D2}") : EveryFieldSet($"msg_{i:D2}");
            row.Content = $"row {i}";
            row.DueAt = 1000 + i;
            return row;
        }).ToList();
        var changed = await _writer.WriteAsync(s =>
        {
            var five = s.Statement(MessageSql.InsertWithoutReturning, 5);
            Assert.That(five.RowsPer, Is.EqualTo(5));
            return five.ExecuteRows(rows, 0) + five.ExecuteRows(rows, 5);
        });

        Assert.That(changed, Is.EqualTo(10));
        await using var c = await _db.OpenAsync();
        var stored = (await c.QueryAsync<MessageRow>("SELECT * FROM messages ORDER BY seq")).ToList();
        Assert.That(stored.Select(r => r.Id), Is.EqualTo(rows.Select(r => r.Id)));
        var named = System.Text.RegularExpressions.Regex.Matches(MessageSql.InsertWithoutReturning, @"@(\w+)").Select(m => m.Groups[1].Value).ToList();
        for (var i = 0; i < rows.Count; i++)
            foreach (var name in named)
            {
                var p = typeof(MessageRow).GetProperty(name, BindingFlags.Public | BindingFlags.Instance)!;
                Assert.That(p.GetValue(stored[i]), Is.EqualTo(p.GetValue(rows[i])), $"row {i}: {name}");
            }
    }

    /// <summary>
    /// A value the parameter already holds is not bound again (SQLite keeps bindings between runs): a value that comes
    /// back after another (the same string object, the same number, NULL) must still be what is stored.
    /// </summary>
    [Test]
    public async Task AValueThatComesBack_ShouldBeStored_AfterTheParameterHeldAnother()
    {
        const string a = "the same text object", b = "another text";
        var values = new (string Content, long? NotBefore, string? Subject)[]
        {
            // one row per run
            (a, 5, null), (a, 5, null), (b, 7, "s"), (a, null, null), (a, 5, "s"),
            // three rows per run, twice: each copy of a parameter holds its own value
            (b, 7, null), (a, 5, "s"), (b, null, null),
            (a, 8, null), (a, 5, "s"), (b, 7, "x"),
        };
        var rows = values.Select((v, i) =>
        {
            var row = Minimal($"msg_back_{i}");
            (row.Content, row.NotBefore, row.Subject) = v;
            return row;
        }).ToList();
        await _writer.WriteAsync(s =>
        {
            foreach (var row in rows.Take(5))
                s.Statement(MessageSql.InsertWithoutReturning).Execute(row);
            return s.Statement(MessageSql.InsertWithoutReturning, 3).ExecuteRows(rows, 5) + s.Statement(MessageSql.InsertWithoutReturning, 3).ExecuteRows(rows, 8);
        });

        await using var c = await _db.OpenAsync();
        var stored = (await c.QueryAsync<(string Content, long? NotBefore, string? Subject)>(
            "SELECT content, not_before, subject FROM messages WHERE id LIKE 'msg_back_%' ORDER BY seq")).ToList();
        Assert.That(stored, Is.EqualTo(values));
    }

    [Test]
    public void SeveralRowsPerStatement_ShouldBeRefused_ForAnythingButOneInsertRow_AndForTheWrongCount()
    {
        var notInsert = Assert.ThrowsAsync<ArgumentException>(() => _writer.WriteAsync(s =>
            s.Statement("UPDATE messages SET content = @Content WHERE id = @Id", 2)));
        Assert.That(notInsert!.Message, Does.Contain("INSERT ... VALUES"));
        var tail = Assert.ThrowsAsync<ArgumentException>(() => _writer.WriteAsync(s =>
            s.Statement("INSERT INTO message_events (message_id, at, status) VALUES (@MessageId, @At, @Status) ON CONFLICT DO NOTHING", 2)));
        Assert.That(tail!.Message, Does.Contain("nothing after the row"));
        var rows = new[] { Minimal("msg_1"), Minimal("msg_2"), Minimal("msg_3") };
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning, 2).ExecuteRows(rows, 2)));
        Assert.ThrowsAsync<InvalidOperationException>(() => _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning, 2).Execute(rows[0])));
    }

    /// <summary>
    /// A bulk's rows go in 25 per statement, the rest one by one: each row and its first event must be what inserting it
    /// alone stores (the same columns, the same event), for a count that leaves a remainder.
    /// </summary>
    [Test]
    public async Task InsertMany_ShouldStoreWhatInsertStores_RowByRowAndEventByEvent()
    {
        var store = _lifecycle.Store;
        MessageRow Row(string prefix, int i)
        {
            var row = i % 4 == 0 ? Minimal($"{prefix}{i:D3}") : EveryFieldSet($"{prefix}{i:D3}");
            row.Content = $"row {i}";
            row.SequenceId = null;
            if (i % 7 == 0)
            {
                row.Status = MessageStatus.Failed;
                row.ErrorCode = FailureCodes.Suppressed;
                row.ErrorMessage = $"suppressed {i}";
            }
            else
            {
                row.ErrorCode = null;
                row.ErrorMessage = null;
            }
            return row;
        }
        const int n = MessageStore.RowsPerInsert * 2 + 7;
        var one = Enumerable.Range(0, n).Select(i => Row("msg_one_", i)).ToList();
        var many = Enumerable.Range(0, n).Select(i => Row("msg_many_", i)).ToList();
        await _writer.WriteAsync(s =>
        {
            foreach (var row in one)
                store.Insert(s, row, "accept");
            return true;
        });
        await _writer.WriteAsync(s => { store.InsertMany(s, many, "accept"); return true; });

        await using var c = await _db.OpenAsync();
        var columns = (await c.QueryAsync<string>("SELECT name FROM pragma_table_info('messages') WHERE name NOT IN ('seq', 'id')")).ToList();
        var select = string.Join(", ", columns.Select(x => $"quote({x})"));
        string Strip(string id) => id.Replace("msg_one_", "").Replace("msg_many_", "");
        var rowsOne = (await c.QueryAsync<string>($"SELECT id || '|' || concat_ws('|', {select}) FROM messages WHERE id LIKE 'msg_one_%' ORDER BY seq")).Select(Strip).ToList();
        var rowsMany = (await c.QueryAsync<string>($"SELECT id || '|' || concat_ws('|', {select}) FROM messages WHERE id LIKE 'msg_many_%' ORDER BY seq")).Select(Strip).ToList();
        Assert.That(rowsMany, Has.Count.EqualTo(n));
        Assert.That(rowsMany, Is.EqualTo(rowsOne));
        const string events = "SELECT message_id || '|' || at || '|' || status || '|' || quote(code) || '|' || quote(detail) FROM message_events WHERE message_id LIKE @P ORDER BY id";
        var eventsOne = (await c.QueryAsync<string>(events, new { P = "msg_one_%" })).Select(Strip).ToList();
        var eventsMany = (await c.QueryAsync<string>(events, new { P = "msg_many_%" })).Select(Strip).ToList();
        Assert.That(eventsMany, Has.Count.EqualTo(n));
        Assert.That(eventsMany, Is.EqualTo(eventsOne));
    }

    /// <summary>
    /// A transition's statement is prepared once and its parameters set from each call's object: a later call with an
    /// object that lacks a parameter must fail as Dapper would, not run with the value the call before left bound.
    /// </summary>
    [Test]
    public async Task Bound_ShouldTakeOnlyThisCallsValues_AndRefuseALeftOverParameter()
    {
        await _writer.WriteAsync(s => s.Statement(MessageSql.InsertWithoutReturning).Execute(EveryFieldSet("msg_bound")));
        const string sql = "UPDATE messages SET content = @Content, subject = @Subject WHERE id = @Id RETURNING content, subject";

        var first = await _writer.WriteAsync(s =>
        {
            using var r = s.Bound(sql, new { Id = "msg_bound", Content = "one", Subject = (string?)"s1" }).ExecuteReader();
            r.Read();
            return (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1));
        });
        var second = await _writer.WriteAsync(s =>
        {
            using var r = s.Bound(sql, new { Id = "msg_bound", Content = "two", Subject = (string?)null }).ExecuteReader();
            r.Read();
            return (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1));
        });
        var leftOver = Assert.ThrowsAsync<InvalidOperationException>(() => _writer.WriteAsync(s =>
            s.Bound(sql, new { Id = "msg_bound", Content = "three" }).ExecuteNonQuery()));
        var list = Assert.ThrowsAsync<ArgumentException>(() => _writer.WriteAsync(s =>
            s.Bound("UPDATE messages SET content = 'x' WHERE id IN (@Ids)", new { Ids = new[] { "a", "b" } }).ExecuteNonQuery()));

        Assert.That(first, Is.EqualTo(("one", (string?)"s1")));
        Assert.That(second, Is.EqualTo(("two", (string?)null)));
        Assert.That(leftOver!.Message, Does.Contain("@Subject"));
        Assert.That(list!.Message, Does.Contain("@Ids is a list"));
        Assert.That((await ReadAsync("msg_bound")).Content, Is.EqualTo("two"));
    }

    [Test]
    public void AParameterWithoutAProperty_ShouldBeNamedInTheError()
    {
        var e = Assert.ThrowsAsync<InvalidOperationException>(() =>
            _writer.WriteAsync(s => s.Statement("INSERT INTO message_events (message_id, at, status) VALUES (@MessageId, @At, @Nope)")
                .Execute(new MessageEventRow { MessageId = "m", At = 1, Status = "sent" })));
        Assert.That(e!.Message, Does.Contain("MessageEventRow has no property for @Nope"));
    }
}
