using Dapper;
using LineAgent.Bridge.ChatDb;
using LineAgent.Channels.Messages;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Suppressions;
using System.Globalization;

namespace LineAgent.Delivery;

/// <summary>An inbound message as a channel reports it: sender (E.164 or lower-case email), date, text, and the channel's own id.</summary>
public sealed record InboundMessage(string Address, DateTimeOffset Date, string? Text, string Type, string Channel, string ChannelRef, string Source);

/// <summary>
/// Inbound chat.db rows from people this agent has messaged become replies linked to the message they answer;
/// STOP-style replies update the suppression list. New rows are found by a (date, ROWID) watermark, because
/// ROWID alone lies: iCloud sync back-fills old messages with new, high ROWIDs (a fresh guid, the original
/// date), and a rebuilt or restored chat.db renumbers everything lower. So an inbound row counts as a reply
/// only when it is dated after one of our sends to that address and after the last reply we took from them;
/// anything older is history and never changes suppressions. When the row at our stored position no longer
/// carries the guid we saw there (or MAX(ROWID) fell below it), the database was replaced: that is logged and
/// reading goes on from the rows dated after the newest one we had seen, without replaying history.
/// </summary>
public sealed class ReplyIntake(MessagesBridge bridge, MessageLifecycle lifecycle, TimeProvider time, ILogger<ReplyIntake> log)
{
    public const string PositionKey = "chatdb.last_rowid";
    public const string GuidKey = "chatdb.last_guid";
    public const string DateKey = "chatdb.last_date";
    /// <summary>When chat.db was last found replaced under the agent (Unix ms).</summary>
    public const string ReplacedAtKey = "chatdb.replaced_at";
    private const int Batch = 500;

    private sealed record Position(long RowId, string? Guid, long DateMs);

    /// <summary>One reader at a time: start-up recovery and the delivery watcher may both read, and each must see the other's position.</summary>
    private readonly SemaphoreSlim _oneReader = new(1, 1);

    public async Task TakeInAsync(CancellationToken ct)
    {
        await _oneReader.WaitAsync(ct);
        try
        {
            await TakeInOnceAsync(ct);
        }
        finally
        {
            _oneReader.Release();
        }
    }

    private async Task TakeInOnceAsync(CancellationToken ct)
    {
        var at = await PositionAsync(ct);
        // The row at the position merely deleted (in Messages, or on the iPhone) is no replacement: the rows after it are read
        // as usual. Before, it was taken for one and reading went on by date, which skips a newer row dated a moment earlier
        // (a relayed SMS, a back-filled STOP) for good (review).
        if (Replaced(at) is { } high)
        {
            await RecoverFromReplacedDatabaseAsync(at, high, ct);
            return;
        }
        while (true)
        {
            var rows = bridge.Reader.ReadAfter(at.RowId, Batch);
            if (rows.Count == 0)
                return;
            foreach (var row in rows)
                await ConsiderAsync(row, ct);
            at = Advance(at, rows);
            await SavePositionAsync(at, ct);
            if (rows.Count < Batch)
                return;
        }
    }

    private async Task RecoverFromReplacedDatabaseAsync(Position at, long max, CancellationToken ct)
    {
        log.LogWarning("chat.db was rebuilt or restored: its highest ROWID is {Max}, the row at our position {RowId} is not the one we read there. " +
                       "Continuing from the rows dated after {Date:O}; older rows are history and are not replayed.", max, at.RowId, Time.FromMs(at.DateMs));
        var since = at;
        while (true)
        {
            var rows = bridge.Reader.ReadSince(Time.FromMs(since.DateMs), Batch);
            foreach (var row in rows)
                await ConsiderAsync(row, ct);
            since = Advance(since, rows);
            if (rows.Count < Batch)
                break;
        }
        var newest = bridge.Reader.MaxRowId();
        // In the same transaction as the new position: a stop between the two would lose that it was replaced (review).
        await SavePositionAsync(new Position(newest, bridge.Reader.GuidAt(newest), since.DateMs), ct, replacedAt: time.GetUtcNow());
    }

    /// <summary>chat.db's high-water mark when chat.db was renumbered under the stored position <paramref name="at"/>, else null
    /// (<see cref="Renumbered"/>; without a stored guid, only a high-water mark below the position tells).</summary>
    private long? Replaced(Position at)
    {
        if (at.Guid is not null && bridge.Reader.GuidAt(at.RowId) == at.Guid)
            return null;
        var high = bridge.Reader.HighWater();
        return (at.Guid is null ? high < at.RowId : Renumbered(at, high)) ? high : null;
    }

    /// <summary>
    /// chat.db was renumbered under the agent (rebuilt or restored), not only a row deleted: its high-water mark (the highest
    /// ROWID it has given, <see cref="ChatDbReader.HighWater"/>) fell below the position, or the row read there is now at
    /// another ROWID. The row there merely gone (a conversation or a junk text deleted in Messages, or on the iPhone; the
    /// newest one too, which lowers MAX(ROWID) but not the high-water mark) is a deletion: it says nothing of the other rows'
    /// positions (review).
    /// </summary>
    private bool Renumbered(Position at, long max) =>
        max < at.RowId || (at.Guid is not null && bridge.Reader.RowIdOf(at.Guid) is { } now && now != at.RowId);

    /// <summary>
    /// When chat.db was last found renumbered (rebuilt or restored) under the agent, or null: now, when it is renumbered under
    /// the stored position and the replies have not been read since (<see cref="Replaced"/>).
    /// A rebuild need not number lower: Messages also renumbers out of date order with MAX(ROWID) as high as before, a
    /// just-sent row far below it (Spshulem/openAGI#36), so a send's chat.db position from before it says nothing.
    /// </summary>
    public async Task<DateTimeOffset?> ReplacedAtAsync(CancellationToken ct)
    {
        Dictionary<string, string> state;
        await using (var c = await lifecycle.Store.Db.OpenAsync(ct))
            state = (await c.QueryAsync<(string Key, string Value)>(new CommandDefinition(DeliverySql.GetStates,
                new { Keys = new[] { PositionKey, GuidKey, ReplacedAtKey } }, cancellationToken: ct))).ToDictionary(r => r.Key, r => r.Value);
        if (state.TryGetValue(PositionKey, out var at) && long.Parse(at, CultureInfo.InvariantCulture) is var rowId && rowId > 0
            && Replaced(new Position(rowId, state.GetValueOrDefault(GuidKey) is { Length: > 0 } guid ? guid : null, 0)) is not null)
            return time.GetUtcNow();
        return state.TryGetValue(ReplacedAtKey, out var ms) ? Time.FromMs(long.Parse(ms, CultureInfo.InvariantCulture)) : null;
    }

    private static Position Advance(Position at, IReadOnlyList<ChatMessage> rows)
    {
        if (rows.Count == 0)
            return at;
        var last = rows[^1];
        var newest = rows.Max(r => r.Date is { } d ? Time.ToMs(d) : 0);
        return new Position(Math.Max(at.RowId, last.RowId), last.Guid, Math.Max(at.DateMs, newest));
    }

    private async Task ConsiderAsync(ChatMessage row, CancellationToken ct)
    {
        if (!row.IsFromMe && row.IsPlainMessage && !string.IsNullOrEmpty(row.Handle) && row.Date is not null)
            await TakeAsync(row, ct);
    }

    private Task TakeAsync(ChatMessage row, CancellationToken ct) =>
        TakeReplyAsync(new InboundMessage(SuppressionList.Key(row.Handle!), row.Date!.Value, row.Text,
            row.IsIMessage ? MessageType.IMessage : MessageType.Sms, MessagesChannel.ChannelName, row.Guid,
            $"chat.db row {row.RowId}, {row.Service}"), ct);

    /// <summary>
    /// An inbound message from any channel that reports them (chat.db, Twilio's Messages list). It is a reply when it
    /// is dated after one of our sends to that address (or after a pending stop-on-reply message to it was created)
    /// and after the last reply taken from them; then it is stored, and in the same transaction the sender's
    /// pending stop-on-reply messages are cancelled and STOP/START update the suppression list.
    /// </summary>
    public async Task<MessageRow?> TakeReplyAsync(InboundMessage inbound, CancellationToken ct)
    {
        var address = inbound.Address;
        var at = Time.ToMs(inbound.Date);
        MessageRow? original;
        MessageRow? waiting = null;
        await using (var c = await lifecycle.Store.Db.OpenAsync(ct))
        {
            if (await c.ExecuteScalarAsync<long>(new CommandDefinition(DeliverySql.InboundExists, new { Guid = inbound.ChannelRef }, cancellationToken: ct)) > 0)
                return null;
            original = await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(DeliverySql.LastOutboundBefore, new { Address = address, At = at }, cancellationToken: ct));
            if (original is null)
                waiting = await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(DeliverySql.PendingStopOnReply, new { Address = address, At = at }, cancellationToken: ct));
            if (original is null && waiting is null)
            {
                // Not someone this agent wrote to, or a row older than every send to them: history, not a reply.
                log.LogDebug("Inbound {Ref} from {Address} dated {Date:O}: no send of ours before it; not a reply", inbound.ChannelRef, address, inbound.Date);
                return null;
            }
            var newestReply = await c.ExecuteScalarAsync<long?>(new CommandDefinition(DeliverySql.NewestInboundFrom, new { Address = address }, cancellationToken: ct));
            // Strictly older: Twilio dates to the second, so a STOP and another text in the same second are both replies
            // (the same message twice is caught above by its id, and a back-filled copy of it, with a new id, by date and text).
            if (newestReply is { } n && (at < n || (at == n && await c.ExecuteScalarAsync<long>(new CommandDefinition(DeliverySql.SameInbound,
                    new { Address = address, At = at, Text = inbound.Text ?? "" }, cancellationToken: ct)) > 0)))
            {
                log.LogInformation("Inbound {Ref} from {Address} is dated {Date:O}, before the last reply taken from them: " +
                                   "history (iCloud back-fill), suppressions unchanged", inbound.ChannelRef, address, inbound.Date);
                return null;
            }
        }

        var now = Time.ToMs(time.GetUtcNow());
        var about = original ?? waiting!;
        var reply = new MessageRow
        {
            Id = Ids.New("msg", inbound.Date), Direction = "inbound", Content = inbound.Text ?? "", Type = inbound.Type, RequestedType = inbound.Type,
            Status = MessageStatus.Received, LineId = about.LineId, LeadId = about.LeadId, BatchId = about.BatchId,
            RecipientPhone = address.Contains('@') ? null : address, RecipientEmail = address.Contains('@') ? address : null,
            RecipientName = about.RecipientName, DueAt = at, SentAt = at, CreatedAt = at, UpdatedAt = now,
            ReplyTo = original?.Id, Channel = inbound.Channel, ChannelRef = inbound.ChannelRef,
        };
        var keyword = OptOutKeywords.Classify(inbound.Text);
        // The person may answer a text from another handle than the one written to (an iPhone whose iMessage caller ID is
        // its Apple ID email answers a text to its number from the email): STOP counts for the number written to as well,
        // and START lifts what a reply put there. Only for a text (iMessage, SMS): the last message to a lead may be an email
        // to an address of theirs that a STOP texted from their phone says nothing about.
        var written = about.Type is MessageType.IMessage or MessageType.Sms && SuppressionList.Key(about.Recipient) is { Length: > 0 } w && w != address
            ? w : null;
        string Both() => written is null ? address : $"{address} and {written}";
        var detail = (original is null ? $"message from {address} before any send of ours reached them" : $"reply to {original.Id}")
            + $" ({inbound.Source})" + keyword switch
        {
            OptOutKeywords.Kind.OptOut => $"; opt-out: {Both()} added to suppressions",
            OptOutKeywords.Kind.OptIn => $"; opt-in: what a STOP put on the suppression list for {Both()} is lifted (not an entry added through the API)",
            _ => "",
        };
        await lifecycle.ReceiveAsync(reply, detail, s =>
        {
            if (keyword == OptOutKeywords.Kind.OptOut)
            {
                SuppressionList.Add(s.Connection, s.Transaction, address, $"replied {inbound.Text?.Trim()}", SuppressionList.Sources.Reply, reply.Id, now);
                if (written is not null)
                    SuppressionList.Add(s.Connection, s.Transaction, written, $"replied {inbound.Text?.Trim()} from {address}", SuppressionList.Sources.Reply, reply.Id, now);
            }
            else if (keyword == OptOutKeywords.Kind.OptIn)
            {
                // Not one added through the API; Twilio's own only when the START came through Twilio.
                SuppressionList.RemoveOnOptIn(s.Connection, s.Transaction, address, inbound.Channel == Channels.Twilio.TwilioSmsChannel.ChannelName);
                if (written is not null)
                    SuppressionList.RemoveReplied(s.Connection, s.Transaction, written); // never one the user or Twilio added
            }
        }, ct);
        if (keyword != OptOutKeywords.Kind.None)
            log.LogInformation("{Address} replied {Keyword}: suppression list updated", address, inbound.Text?.Trim());
        return reply;
    }

    private async Task<Position> PositionAsync(CancellationToken ct)
    {
        await using var c = await lifecycle.Store.Db.OpenAsync(ct);
        var state = (await c.QueryAsync<(string Key, string Value)>(new CommandDefinition(DeliverySql.GetStates,
            new { Keys = new[] { PositionKey, GuidKey, DateKey } }, cancellationToken: ct))).ToDictionary(r => r.Key, r => r.Value);
        if (state.TryGetValue(PositionKey, out var rowId))
            return new Position(long.Parse(rowId, CultureInfo.InvariantCulture), state.GetValueOrDefault(GuidKey) is { Length: > 0 } g ? g : null,
                state.TryGetValue(DateKey, out var d) ? long.Parse(d, CultureInfo.InvariantCulture) : 0);
        // First start: replies begin now; the history before this agent is not imported.
        var max = bridge.Reader.MaxRowId();
        var first = new Position(max, max > 0 ? bridge.Reader.GuidAt(max) : null, Time.ToMs(time.GetUtcNow()));
        await SavePositionAsync(first, ct);
        return first;
    }

    private async Task SavePositionAsync(Position at, CancellationToken ct, DateTimeOffset? replacedAt = null)
    {
        await using var c = await lifecycle.Store.Db.OpenAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        var keys = new List<object>
        {
            new { Key = PositionKey, Value = at.RowId.ToString(CultureInfo.InvariantCulture) },
            new { Key = GuidKey, Value = at.Guid ?? "" },
            new { Key = DateKey, Value = at.DateMs.ToString(CultureInfo.InvariantCulture) },
        };
        if (replacedAt is { } r)
            keys.Add(new { Key = ReplacedAtKey, Value = Time.ToMs(r).ToString(CultureInfo.InvariantCulture) });
        await c.ExecuteAsync(new CommandDefinition(DeliverySql.SetState, keys, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }
}
