using Dapper;
using LineAgent.Bridge.ChatDb;
using LineAgent.Channels.Messages;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Scheduling;
using LineAgent.Storage;
using LineAgent.Suppressions;
using Microsoft.Extensions.Options;
using DeliveryState = LineAgent.Messages.Delivery;

namespace LineAgent.Delivery;

/// <summary>
/// Reads Messages' chat.db as it changes: confirms our sends (matched row → `sent`, its guid kept),
/// records delivered/read, fails what Messages failed (22 → imessage_unavailable, then an SMS fallback
/// where the line allows it), fails sends nobody confirms within Bridge:ConfirmTimeout, and takes in replies.
/// </summary>
public sealed class DeliveryWatcher(
    MessagesBridge bridge,
    MessageStore store,
    MessageNotifier notifier,
    LineRegistry lines,
    DispatchSignal dispatch,
    ReplyIntake replies,
    Channels.ChannelRouter channels,
    IOptions<AgentOptions> agent,
    TimeProvider time,
    ILogger<DeliveryWatcher> log) : BackgroundService
{
    private readonly SemaphoreSlim _wake = new(0, 1);
    private string? _lastProblem;

    public void Wake()
    {
        try { if (_wake.CurrentCount == 0) _wake.Release(); }
        catch (SemaphoreFullException) { }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (agent.Value.DryRun || !bridge.IsConfigured)
        {
            log.LogInformation("Delivery watcher idle: {Reason}", agent.Value.DryRun ? "dry run" : $"{bridge.OsascriptPath} not found");
            return;
        }
        using var watcher = new ChatDbWatcher(bridge.Reader.Path, bridge.Options.WatchDebounce);
        watcher.Changed += Wake;
        notifier.Changed += OnMessageChanged;
        log.LogInformation("Delivery watcher: reading {ChatDb} (file events: {Watching})", bridge.Reader.Path, watcher.IsWatching);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                TimeSpan nextCheck;
                try
                {
                    nextCheck = await PassAsync(stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    log.LogError(e, "Delivery watcher pass failed");
                    nextCheck = bridge.Options.PollInterval;
                }
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                var timer = Task.Delay(nextCheck, time, cts.Token);
                await Task.WhenAny(_wake.WaitAsync(cts.Token), timer);
                cts.Cancel();
            }
        }
        finally
        {
            notifier.Changed -= OnMessageChanged;
        }
    }

    private void OnMessageChanged(MessageRow row)
    {
        if (row.Channel == MessagesChannel.ChannelName && row.Status == MessageStatus.Sending && row.AcceptedAt is not null)
            Wake();
    }

    /// <summary>One look at chat.db. Returns how long to wait before the next unprompted look.</summary>
    internal async Task<TimeSpan> PassAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var poll = bridge.Options.PollInterval;
        List<MessageRow> awaiting;
        await using (var c = await store.Db.OpenAsync(ct))
            awaiting = (await c.QueryAsync<MessageRow>(new CommandDefinition(DeliverySql.AwaitingConfirmation, cancellationToken: ct))).AsList();

        await using (var c = await store.Db.OpenAsync(ct))
            awaiting.AddRange(await c.QueryAsync<MessageRow>(new CommandDefinition(DeliverySql.UnconfirmedStillWatched, new { Now = Time.ToMs(now) }, cancellationToken: ct)));

        try
        {
            await MatchNewSendsAsync(awaiting, ct);
            await ApplyChatDbStateAsync(ct);
            await replies.TakeInAsync(ct);
            _lastProblem = null;
        }
        catch (ChatDbUnavailableException e)
        {
            if (_lastProblem != e.Message)
                log.LogWarning("chat.db unreadable: {Problem}. Sends cannot be confirmed and will fail as unconfirmed.", e.Message);
            _lastProblem = e.Message;
        }

        await FailUnconfirmedAsync(now, ct);
        await using (var c = await store.Db.OpenAsync(ct))
            await c.ExecuteAsync(new CommandDefinition(DeliverySql.ExpireTracking, new { Now = Time.ToMs(now) }, cancellationToken: ct));

        // Wake in time for the next confirmation deadline.
        await using (var c = await store.Db.OpenAsync(ct))
        {
            var oldest = await c.ExecuteScalarAsync<long?>(new CommandDefinition(
                "SELECT MIN(accepted_at) FROM messages WHERE status = 'sending' AND channel = 'messages'", cancellationToken: ct));
            if (oldest is { } h)
            {
                var deadline = Time.FromMs(h) + bridge.Options.ConfirmTimeout - time.GetUtcNow();
                if (deadline < poll) poll = deadline < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50) : deadline;
            }
        }
        return poll;
    }

    /// <summary>
    /// Finds the chat.db row of each send not yet matched by position, not by text: our own row to that handle,
    /// above the MAX(ROWID) taken just before the send, dated at or after the hand-off. Decoded text can differ
    /// from what was sent (a real attributedBody decodes doubled; link previews add rows), so normalised text
    /// only chooses between candidates. Without a baseline (a crash before it was stored) the text must agree.
    /// </summary>
    private async Task MatchNewSendsAsync(List<MessageRow> awaiting, CancellationToken ct)
    {
        var claimedThisPass = new HashSet<string>();
        foreach (var m in awaiting.Where(m => m.ChannelRef is null))
        {
            // Messages' clock and ours are the same clock, but a date is written when the row is, not when we asked.
            var since = Time.FromMs(m.HandedAt!.Value) - TimeSpan.FromSeconds(2);
            var candidates = new List<ChatMessage>();
            foreach (var row in bridge.Reader.OutgoingTo(m.Recipient, since, m.ChannelBaseline ?? 0))
                if ((row.IsPlainMessage || row.IsGhost)
                    && !claimedThisPass.Contains(row.Guid) && !await GuidTakenAsync(row.Guid, ct))
                    candidates.Add(row);
            var chosen = Choose(candidates, m.Content, requireText: m.ChannelBaseline is null);
            if (chosen is null)
                continue;
            var matched = await store.TransitionAsync(DeliverySql.Match, new { m.Id, Guid = chosen.Guid, Now = NowMs },
                code: "matched", detail: $"chat.db row {chosen.RowId} ({chosen.Service}) guid {chosen.Guid}", ct: ct);
            if (matched is not null)
                claimedThisPass.Add(chosen.Guid);
        }
    }

    /// <summary>
    /// Same text first, then a row whose text holds ours (doubled decode), then the oldest candidate. A link's
    /// preview row comes last: it is ours only when the message was nothing but the link.
    /// </summary>
    internal static ChatMessage? Choose(IReadOnlyList<ChatMessage> rows, string content, bool requireText)
    {
        var candidates = rows.OrderBy(r => r.IsUrlPreview).ThenBy(r => r.RowId).ToList();
        var want = TextKey(content);
        return candidates.FirstOrDefault(r => TextKey(r.Text) == want)
            ?? candidates.FirstOrDefault(r => want.Length > 0 && TextKey(r.Text).Contains(want, StringComparison.Ordinal))
            ?? (requireText ? candidates.FirstOrDefault(r => r.IsGhost) : candidates.FirstOrDefault());
    }

    /// <summary>NFC, letters and digits only, lower case: what survives Messages' own rewriting of a text.</summary>
    internal static string TextKey(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return "";
        var sb = new System.Text.StringBuilder(text.Length);
        foreach (var ch in text.Normalize(System.Text.NormalizationForm.FormC))
            if (char.IsLetterOrDigit(ch))
                sb.Append(char.ToLowerInvariant(ch));
        return sb.ToString();
    }

    private async Task ApplyChatDbStateAsync(CancellationToken ct)
    {
        List<MessageRow> ours;
        await using (var c = await store.Db.OpenAsync(ct))
        {
            ours = (await c.QueryAsync<MessageRow>(new CommandDefinition(DeliverySql.AwaitingConfirmation, cancellationToken: ct)))
                .Where(m => m.ChannelRef is not null).ToList();
            ours.AddRange(await c.QueryAsync<MessageRow>(new CommandDefinition(DeliverySql.Tracked, new { Now = NowMs }, cancellationToken: ct)));
        }
        if (ours.Count == 0)
            return;
        var rows = bridge.Reader.ReadByGuids(ours.Select(m => m.ChannelRef!).Distinct().ToList()).ToDictionary(r => r.Guid);
        foreach (var m in ours.DistinctBy(m => m.Id))
            if (rows.TryGetValue(m.ChannelRef!, out var row))
                await ApplyAsync(m, row, ct);
    }

    internal async Task ApplyAsync(MessageRow m, ChatMessage row, CancellationToken ct)
    {
        if (m.Status == MessageStatus.Failed && m.ErrorCode == "unconfirmed")
        {
            if (row.Error != 0 || row.IsGhost)
                await store.TransitionAsync(DeliverySql.FailLate, new
                {
                    m.Id, Code = row.IsGhost ? "ghost_row" : ErrorCodeFor(row), ChannelError = row.Error, Now = NowMs,
                    Message = row.IsGhost ? "Messages wrote an empty SMS row outside any chat (macOS 26 fault); not delivered." : $"Messages error {row.Error}: the send failed.",
                }, code: "settled", detail: "chat.db settled an unconfirmed send: it failed", ct: ct);
            else if (row.IsConfirmedSent && await store.TransitionAsync(DeliverySql.ConfirmLate, new
                     {
                         m.Id, SentAt = Time.ToMs(row.Date ?? time.GetUtcNow()), Now = NowMs,
                         TrackUntil = Time.ToMs(time.GetUtcNow() + bridge.Options.TrackDeliveryFor),
                     }, code: "confirmed", detail: "chat.db confirmed it after the confirmation timeout", ct: ct) is { } late)
                await ApplyAsync(late, row, ct);
            return;
        }
        if (m.Status == MessageStatus.Sending)
        {
            if (row.IsGhost)
            {
                await FailAsync(m, "ghost_row", 0,
                    "Messages reported success but wrote an empty SMS row outside any chat (a known macOS 26 fault); it was not delivered.", ct);
                return;
            }
            if (row.Error != 0)
            {
                await FailWithErrorAsync(m, row, ct);
                return;
            }
            if (!row.IsConfirmedSent)
                return;
            var sent = await store.TransitionAsync(DeliverySql.ConfirmSent, new
            {
                m.Id, SentAt = Time.ToMs(row.Date ?? time.GetUtcNow()), Now = NowMs,
                TrackUntil = Time.ToMs(time.GetUtcNow() + bridge.Options.TrackDeliveryFor),
            }, code: "confirmed", detail: $"confirmed by chat.db ({row.Service}{(row.WasDowngraded ? ", downgraded to SMS" : "")})", ct: ct);
            if (sent is null)
                return;
            m = sent;
        }

        if (m.Status != MessageStatus.Sent)
            return;
        if (row.Error != 0 && m.Delivery != DeliveryState.NotDelivered)
        {
            await store.TransitionAsync(DeliverySql.NotDelivered, new { m.Id, ChannelError = row.Error, Now = NowMs },
                code: ErrorCodeFor(row), detail: $"Messages reported error {row.Error} after sending", eventStatus: DeliveryState.NotDelivered, ct: ct);
            return;
        }
        if (row.DateRead is { } readAt && m.Delivery != DeliveryState.Read)
        {
            await store.TransitionAsync(DeliverySql.Read, new { m.Id, At = Time.ToMs(readAt), Now = NowMs },
                detail: "read (chat.db date_read)", eventStatus: DeliveryState.Read, ct: ct);
            return;
        }
        if (row.IsDelivered && m.Delivery == DeliveryState.Unknown)
            await store.TransitionAsync(DeliverySql.Delivered, new { m.Id, At = Time.ToMs(row.DateDelivered ?? time.GetUtcNow()), Now = NowMs },
                detail: "delivered (chat.db is_delivered)", eventStatus: DeliveryState.Delivered, ct: ct);
    }

    private async Task FailWithErrorAsync(MessageRow m, ChatMessage row, CancellationToken ct)
    {
        var code = ErrorCodeFor(row);
        var reason = code switch
        {
            NoIMessage => $"Messages error 22: {m.Recipient} does not use iMessage.",
            NotDeliverable => $"Messages error 22: {m.Recipient} could not be reached over {row.Service}.",
            _ => $"Messages error {row.Error}: the send failed.",
        };
        var line = lines.Find(m.LineId);
        var fallback = code == NoIMessage && m.Type == Messages.MessageType.IMessage && m.RecipientPhone is not null
            && line is { FallbackToSms: true, Sms.Enabled: true }
            && channels.Resolve(line, Messages.MessageType.Sms) is not Channels.UnavailableChannel;
        if (!fallback)
        {
            await FailAsync(m, code, row.Error,
                reason + (code == NoIMessage && m.Type == Messages.MessageType.IMessage
                    ? m.RecipientPhone is null ? " No phone number to fall back to SMS." : $" Line '{m.LineId}' does not fall back to SMS."
                    : ""), ct);
            return;
        }

        var now = time.GetUtcNow();
        var sms = new MessageRow
        {
            Id = Ids.New("msg", now), Content = m.Content, Type = Messages.MessageType.Sms, RequestedType = m.RequestedType,
            Status = MessageStatus.Queued, LineId = m.LineId, LeadId = m.LeadId, BatchId = m.BatchId,
            RecipientPhone = m.RecipientPhone, RecipientEmail = m.RecipientEmail, RecipientName = m.RecipientName,
            DueAt = Time.ToMs(now), CreatedAt = Time.ToMs(now), UpdatedAt = Time.ToMs(now), FallbackFrom = m.Id, DryRun = m.DryRun,
        };
        var done = await store.TransitionAndInsertAsync(DeliverySql.Fail, new
        {
            m.Id, Code = code, Message = reason + $" Sent again as SMS: {sms.Id}.", ChannelError = row.Error, FallbackTo = sms.Id, Now = NowMs,
        }, sms, $"SMS fallback for {m.Id} (iMessage error 22)", ct: ct);
        if (done is not null)
        {
            log.LogInformation("{Id}: no iMessage for {Recipient}; falling back to SMS {Sms}", m.Id, m.Recipient, sms.Id);
            dispatch.Notify(sms.LineId);
        }
    }

    private Task<MessageRow?> FailAsync(MessageRow m, string code, long channelError, string message, CancellationToken ct) =>
        store.TransitionAsync(DeliverySql.Fail, new { m.Id, Code = code, Message = message, ChannelError = channelError, FallbackTo = (string?)null, Now = NowMs }, ct: ct);

    private async Task FailUnconfirmedAsync(DateTimeOffset now, CancellationToken ct)
    {
        List<MessageRow> awaiting;
        await using (var c = await store.Db.OpenAsync(ct))
            awaiting = (await c.QueryAsync<MessageRow>(new CommandDefinition(DeliverySql.AwaitingConfirmation, cancellationToken: ct))).AsList();
        var timeout = bridge.Options.ConfirmTimeout;
        // From the channel's acceptance: a send held by a consent dialog has not started its clock yet.
        foreach (var m in awaiting.Where(m => now - Time.FromMs(m.AcceptedAt!.Value) >= timeout))
            await store.TransitionAsync(DeliverySql.FailUnconfirmed, new
            {
                m.Id, Now = NowMs, TrackUntil = Time.ToMs(now + bridge.Options.TrackDeliveryFor),
                Message = m.ChannelRef is null
                    ? $"Messages accepted the send but no matching row appeared in chat.db within {timeout.TotalSeconds:0} s. It may or may not have gone out; it is not resent automatically (chat.db is still watched for it)."
                    : $"chat.db has the row ({m.ChannelRef}) but Messages did not mark it sent within {timeout.TotalSeconds:0} s. Not resent automatically (still watched).",
            }, ct: ct);
    }

    public const string NoIMessage = "imessage_unavailable";
    public const string NotDeliverable = "not_deliverable";

    /// <summary>
    /// Error 22 means "not deliverable on this service": only an iMessage row says the address has no iMessage.
    /// The same number on an SMS or RCS row is about that service and must not paint the address gray.
    /// </summary>
    public static string ErrorCodeFor(ChatMessage row) =>
        row.Error != 22 ? "messages_error" : row.IsIMessage ? NoIMessage : NotDeliverable;

    private async Task<bool> GuidTakenAsync(string guid, CancellationToken ct)
    {
        await using var c = await store.Db.OpenAsync(ct);
        return await c.ExecuteScalarAsync<long>(new CommandDefinition(DeliverySql.GuidTaken, new { Guid = guid }, cancellationToken: ct)) > 0;
    }

    private long NowMs => Time.ToMs(time.GetUtcNow());
}
