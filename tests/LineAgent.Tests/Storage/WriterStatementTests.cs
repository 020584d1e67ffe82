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

    [Test]
    public void AParameterWithoutAProperty_ShouldBeNamedInTheError()
    {
        var e = Assert.ThrowsAsync<InvalidOperationException>(() =>
            _writer.WriteAsync(s => s.Statement("INSERT INTO message_events (message_id, at, status) VALUES (@MessageId, @At, @Nope)")
                .Execute(new MessageEventRow { MessageId = "m", At = 1, Status = "sent" })));
        Assert.That(e!.Message, Does.Contain("MessageEventRow has no property for @Nope"));
    }
}
