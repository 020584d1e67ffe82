using Dapper;
using LineAgent.Bridge.ChatDb;
using LineAgent.Channels.Messages;
using LineAgent.Messages;
using LineAgent.Storage;
using LineAgent.Suppressions;

namespace LineAgent.Delivery;

/// <summary>
/// Inbound chat.db rows from people this agent has messaged become replies linked to the last message
/// to them; STOP-style replies update the suppression list. Reads by ROWID from where it left off.
/// </summary>
public sealed class ReplyIntake(MessagesBridge bridge, MessageStore store, TimeProvider time, ILogger<ReplyIntake> log)
{
    public const string PositionKey = "chatdb.last_rowid";
    private const int Batch = 500;

    public async Task TakeInAsync(CancellationToken ct)
    {
        var last = await PositionAsync(ct);
        while (true)
        {
            var rows = bridge.Reader.ReadAfter(last, Batch);
            if (rows.Count == 0)
                return;
            foreach (var row in rows)
            {
                if (!row.IsFromMe && row.IsPlainMessage && !string.IsNullOrEmpty(row.Handle))
                    await TakeAsync(row, ct);
                last = row.RowId;
            }
            await SavePositionAsync(last, ct);
            if (rows.Count < Batch)
                return;
        }
    }

    private async Task TakeAsync(ChatMessage row, CancellationToken ct)
    {
        var address = SuppressionList.Key(row.Handle!);
        MessageRow? original;
        await using (var c = await store.Db.OpenAsync(ct))
        {
            if (await c.ExecuteScalarAsync<long>(new CommandDefinition(DeliverySql.InboundExists, new { Guid = row.Guid }, cancellationToken: ct)) > 0)
                return;
            original = await c.QuerySingleOrDefaultAsync<MessageRow>(new CommandDefinition(DeliverySql.LastOutboundTo, new { Address = address }, cancellationToken: ct));
        }
        if (original is null)
            return; // not someone this agent wrote to: their conversation is not ours to store

        var at = row.Date ?? time.GetUtcNow();
        var now = Time.ToMs(time.GetUtcNow());
        var reply = new MessageRow
        {
            Id = Ids.New("msg", at), Direction = "inbound", Content = row.Text ?? "", Type = row.Service == "iMessage" ? MessageType.IMessage : MessageType.Sms,
            RequestedType = row.Service == "iMessage" ? MessageType.IMessage : MessageType.Sms, Status = MessageStatus.Received,
            LineId = original.LineId, LeadId = original.LeadId, BatchId = original.BatchId,
            RecipientPhone = address.Contains('@') ? null : address, RecipientEmail = address.Contains('@') ? address : null,
            RecipientName = original.RecipientName, DueAt = Time.ToMs(at), SentAt = Time.ToMs(at), CreatedAt = Time.ToMs(at), UpdatedAt = now,
            ReplyTo = original.Id, Channel = MessagesChannel.ChannelName, ChannelRef = row.Guid,
        };
        var keyword = OptOutKeywords.Classify(row.Text);
        var detail = $"reply to {original.Id} (chat.db row {row.RowId})" + keyword switch
        {
            OptOutKeywords.Kind.OptOut => $"; opt-out: {address} added to suppressions",
            OptOutKeywords.Kind.OptIn => $"; opt-in: {address} removed from suppressions",
            _ => "",
        };
        await store.InsertOneAsync(reply, detail, async (c, tx) =>
        {
            if (keyword == OptOutKeywords.Kind.OptOut)
                await SuppressionList.AddAsync(c, tx, address, $"replied {row.Text?.Trim()}", SuppressionList.Sources.Reply, reply.Id, now);
            else if (keyword == OptOutKeywords.Kind.OptIn)
                await SuppressionList.RemoveAsync(c, tx, address);
        }, ct);
        if (keyword != OptOutKeywords.Kind.None)
            log.LogInformation("{Address} replied {Keyword}: suppression list updated", address, row.Text?.Trim());
    }

    private async Task<long> PositionAsync(CancellationToken ct)
    {
        await using var c = await store.Db.OpenAsync(ct);
        var stored = await c.ExecuteScalarAsync<string?>(new CommandDefinition(DeliverySql.GetState, new { Key = PositionKey }, cancellationToken: ct));
        if (stored is not null)
            return long.Parse(stored, System.Globalization.CultureInfo.InvariantCulture);
        // First start: replies begin now; the history before this agent is not imported.
        var max = bridge.Reader.MaxRowId();
        await c.ExecuteAsync(new CommandDefinition(DeliverySql.SetState, new { Key = PositionKey, Value = max.ToString(System.Globalization.CultureInfo.InvariantCulture) }, cancellationToken: ct));
        return max;
    }

    private async Task SavePositionAsync(long rowId, CancellationToken ct)
    {
        await using var c = await store.Db.OpenAsync(ct);
        await c.ExecuteAsync(new CommandDefinition(DeliverySql.SetState,
            new { Key = PositionKey, Value = rowId.ToString(System.Globalization.CultureInfo.InvariantCulture) }, cancellationToken: ct));
    }
}
