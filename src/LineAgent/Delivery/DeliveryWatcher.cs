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
    MessageLifecycle lifecycle,
    MessageNotifier notifier,
    LineRegistry lines,
    ReplyIntake replies,
    Channels.ChannelRouter channels,
    MessagesSendsInFlight sendsInFlight,
    IOptions<AgentOptions> agent,
    TimeProvider time,
    ILogger<DeliveryWatcher> log) : WorkerLoop(time, log)
{
    private string? _lastProblem;
    private readonly HashSet<string> _rebuiltWarned = [];
    private ChatDbWatcher? _watcher;
    private DateTimeOffset _trackingExpiredAt;

    private MessageStore Store => lifecycle.Store;

    protected override TimeSpan RetryAfterError => bridge.Options.PollInterval;

    protected override Task<bool> StartingAsync(CancellationToken ct)
    {
        if (agent.Value.DryRun || !bridge.IsConfigured)
        {
            log.LogInformation("Delivery watcher idle: {Reason}", agent.Value.DryRun ? "dry run" : $"{bridge.OsascriptPath} not found");
            return Task.FromResult(false);
        }
        _watcher = new ChatDbWatcher(bridge.Reader.Path, bridge.Options.WatchDebounce);
        _watcher.Changed += Wake;
        notifier.Changed += OnMessageChanged;
        log.LogInformation("Delivery watcher: reading {ChatDb} (file events: {Watching})", bridge.Reader.Path, _watcher.IsWatching);
        return Task.FromResult(true);
    }

    protected override void Stopped()
    {
        notifier.Changed -= OnMessageChanged;
        _watcher?.Dispose();
    }

    /// <summary>Only a Messages send that Messages just accepted needs a look at chat.db now.</summary>
    private void OnMessageChanged(MessageChange change)
    {
        if (change.Transition == Transitions.ChannelAccepted && change.Row.Channel == MessagesChannel.ChannelName)
            Wake();
    }

    /// <summary>One look at chat.db. Returns when to look again unprompted (the poll, or the next confirmation deadline).</summary>
    protected override async Task<DateTimeOffset> PassAsync(CancellationToken ct)
    {
        var now = Clock.GetUtcNow();
        var next = now + bridge.Options.PollInterval;
        // Before the sends are read: an outcome recorded after this is one they may not show (MatchNewSendsAsync).
        var mark = sendsInFlight.Mark;
        var awaiting = (await Store.QueryAsync(DeliverySql.AwaitingConfirmation, ct: ct)).ToList();
        awaiting.AddRange(await Store.QueryAsync(DeliverySql.UnconfirmedStillWatched, new { Now = Time.ToMs(now) }, ct));

        try
        {
            await MatchNewSendsAsync(awaiting, mark, ct);
            await ApplyChatDbStateAsync(ct);
            await replies.TakeInAsync(ct);
            _lastProblem = null;
        }
        catch (ChatDbUnavailableException e)
        {
            if (_lastProblem != e.Message)
                log.LogWarning("chat.db unreadable: {Problem}. Sends in flight cannot be confirmed and will fail as unconfirmed; new sends are refused while it is missing or denied.", e.Message);
            _lastProblem = e.Message;
        }

        await FailUnconfirmedAsync(now, ct);
        if (now - _trackingExpiredAt >= TimeSpan.FromMinutes(1))
        {
            await lifecycle.ExpireTrackingAsync(ct);
            _trackingExpiredAt = now;
        }

        // Wake in time for the next confirmation deadline.
        await using var c = await Store.Db.OpenAsync(ct);
        var oldest = await c.ExecuteScalarAsync<long?>(new CommandDefinition(DeliverySql.OldestAwaiting, cancellationToken: ct));
        if (oldest is { } accepted)
        {
            var deadline = Time.FromMs(accepted) + bridge.Options.ConfirmTimeout;
            if (deadline < next) next = deadline;
        }
        return next;
    }

    /// <summary>
    /// Finds the chat.db row of each send not yet matched by position, not by text: our own row to that handle,
    /// above the MAX(ROWID) taken just before the send, dated at or after the hand-off. Decoded text can differ
    /// from what was sent (a real attributedBody decodes doubled; link previews add rows), so normalised text
    /// only chooses between candidates. A send whose script this process did not see run to its outcome (recovered after
    /// a crash: it may not have run at all), or that has no baseline, must agree by text too.
    /// </summary>
    private async Task MatchNewSendsAsync(List<MessageRow> awaiting, long mark, CancellationToken ct)
    {
        var claimedThisPass = new HashSet<string>();
        long? max = null;
        var longest = channels.ByName(MessagesChannel.ChannelName)?.LongestAttempt ?? bridge.Options.ScriptTimeout;
        // What this process knows of each send's script: its baseline (also when the outcome was written without one: the
        // attempt timed out) and the order the scripts started in.
        var known = sendsInFlight.Snapshot().ToDictionary(f => f.MessageId);
        // Its script ran (its outcome was written with the baseline, or this process ran it and read one): a row above the
        // baseline is its own whatever its text.
        bool ScriptRan(MessageRow m) => m.ChannelBaseline is not null || (known.TryGetValue(m.Id, out var f) && f.Baseline is not null);
        // The baseline, also of a send that a crash cut off before its outcome was written: stored before its script.
        long? BaselineOf(MessageRow m) => m.ChannelBaseline ?? m.ScriptPosition;
        // A baseline above chat.db's high-water mark says nothing (rebuilt or restored: numbered from 1 again), and would put an
        // old send before a new one in the order below (review: a send from before a restore took its resend's row).
        // Nor does one taken before chat.db was found replaced: a rebuild may keep MAX(ROWID) as high and put our row below
        // (ReplyIntake.ReplacedAtAsync).
        DateTimeOffset? replacedAt = null;
        if (awaiting.Any(m => m.ChannelRef is null && BaselineOf(m) is not null))
        {
            max = bridge.Reader.HighWater();
            replacedAt = await replies.ReplacedAtAsync(ct);
        }
        bool TakenBeforeAReplacement(MessageRow m) => replacedAt is { } r && Time.FromMs(m.HandedAt!.Value) <= r;
        long? UsableBaselineOf(MessageRow m) => BaselineOf(m) is { } b && b <= max && !TakenBeforeAReplacement(m) ? b : null;
        // Sends with a baseline newest first (by baseline, then by the order their scripts started, which retries and the
        // Messages gate can make differ from the hand-offs': review): one script runs at a time and writes its row before
        // it exits, so a row above a later send's baseline was written after the earlier script had ended: it is the later
        // send's, even when an earlier send of the same text to the same person is still waiting for a row that never came
        // (oldest first, that earlier send took it, and the later one failed unconfirmed and invited a forced resend).
        // Sends without a baseline after them, in the order they were read.
        var unmatched = awaiting.Where(m => m.ChannelRef is null).ToList();
        var order = unmatched.Where(m => UsableBaselineOf(m) is not null)
            .OrderByDescending(m => UsableBaselineOf(m)).ThenByDescending(m => known.TryGetValue(m.Id, out var f) ? f.Order : 0).ThenByDescending(m => m.HandedAt)
            .Concat(unmatched.Where(m => UsableBaselineOf(m) is null));
        // Not held by: the sends whose baseline the database gives this pass (matched in the order above). Held by: a send
        // whose outcome this pass has not read, or whose outcome was written without a baseline, while this process knows
        // its script (its baseline or start; a killed osascript's row can come after the outcome). A send recovered after a
        // crash without a baseline holds nothing (a hold by its hand-off time held other sends' own rows for good: review).
        var withBaseline = awaiting.Where(m => m.ChannelBaseline is not null).Select(m => m.Id).ToHashSet();
        var withoutIds = awaiting.Where(m => m.ChannelBaseline is null).Select(m => m.Id).ToHashSet();
        foreach (var m in order)
        {
            // Messages' clock and ours are the same clock, but a date is written when the row is, not when we asked.
            var since = Time.FromMs(m.HandedAt!.Value) - TimeSpan.FromSeconds(2);
            known.TryGetValue(m.Id, out var own);
            var baseline = BaselineOf(m);
            // Else (recovered after a crash, the outcome never written: the script may not have run at all) the baseline
            // only bounds the rows; the text must agree and the row's date fall within the attempt.
            var ran = ScriptRan(m);
            // Without a usable baseline, only rows written while the script could still run are ours: the script writes its
            // row before it exits (the channel's longest attempt at most, from its start when this process ran it, else from
            // the hand-off), so a later row to that person is someone else's (typed on the phone). Before, a send without a
            // baseline matched any later row of its text for as long as it was watched (review).
            var until = (own?.StartedAt ?? Time.FromMs(m.HandedAt!.Value)) + longest;
            // A rebuilt or restored chat.db (BRIDGE.md) is numbered from 1 again: below the baseline, our row would never be
            // seen. The position then proves nothing; the send is matched as one without a baseline (by its text).
            if (baseline is { } b && (max ??= bridge.Reader.HighWater()) < b)
            {
                if (_rebuiltWarned.Add(m.Id))
                    log.LogWarning("{Id}: chat.db's highest ROWID {Max} is below the {Baseline} taken before the send (the database was rebuilt or " +
                                   "restored); matching its row by text", m.Id, max, b);
                baseline = null;
                ran = false;
            }
            else if (baseline is { } before && TakenBeforeAReplacement(m))
            {
                if (_rebuiltWarned.Add(m.Id))
                    log.LogWarning("{Id}: chat.db was replaced (rebuilt or restored) after the send's position {Baseline} was taken; matching its row by text",
                        m.Id, before);
                baseline = null;
                ran = false;
            }
            var rows = bridge.Reader.OutgoingTo(m.Recipient, since, baseline ?? 0).ToList();
            // Read after the rows: a send whose script wrote one of them had started by then. A send to the same person (any
            // person, for a ghost row that names nobody) whose outcome this pass has not read may own a row above its
            // baseline: that row waits for the outcome (MessagesSendsInFlight). A loaded CI machine gave a later send's row
            // to an earlier send of the same text still waiting, which left the later one unconfirmed.
            var others = sendsInFlight.Snapshot().Where(f => f.MessageId != m.Id && !withBaseline.Contains(f.MessageId)
                && (MessagesSendsInFlight.UnseenBy(f, mark) || withoutIds.Contains(f.MessageId))).ToList();
            if (others.Count > 0)
                max ??= bridge.Reader.HighWater();
            var candidates = new List<ChatMessage>();
            foreach (var row in rows)
                if ((row.IsPlainMessage || row.IsGhost) && (ran || row.Date is null || row.Date <= until)
                    && !others.Any(f => MayBeItsRow(f, row, m.Recipient, own, baseline, Time.FromMs(m.HandedAt!.Value), max ?? 0, longest))
                    && !claimedThisPass.Contains(row.Guid) && !await GuidTakenAsync(row.Guid, ct))
                    candidates.Add(row);
            var chosen = Choose(candidates, m.Content, requireText: !ran, anyTextUntil: until);
            if (chosen is null)
                continue;
            var matched = await lifecycle.MatchAsync(m.Id, chosen.Guid, $"chat.db row {chosen.RowId} ({chosen.Service}) guid {chosen.Guid}", ct);
            if (matched is not null)
                claimedThisPass.Add(chosen.Guid);
        }
    }

    /// <summary>
    /// Whether <paramref name="row"/>, a candidate of a send to <paramref name="recipient"/> (in memory as <paramref name="own"/>
    /// while this process remembers its script: not after a restart, nor 10 minutes after its outcome; its baseline <paramref name="ownBaseline"/>, handed off at <paramref name="ownHandOff"/>),
    /// may have been written by the script of <paramref name="send"/>, whose outcome (or baseline) the database does not have.
    /// Only a script that started after this send's can have: scripts run one at a time, so an earlier one wrote its rows
    /// below this send's baseline. Which started later: the order they started in, when both are in memory (equal
    /// baselines, or none, say nothing: review); else the baselines; else the times. Then by position when its baseline
    /// holds (chat.db's MAX(ROWID) <paramref name="max"/> is not below it: a rebuilt chat.db numbers from 1 again), else by date.
    /// </summary>
    /// <param name="longest">How long one script may run (the channel's longest attempt): a row dated later is not its.</param>
    internal static bool MayBeItsRow(MessagesSendsInFlight.Send send, ChatMessage row, string recipient, MessagesSendsInFlight.Send? own,
        long? ownBaseline, DateTimeOffset ownHandOff, long max, TimeSpan longest)
    {
        if (!row.IsGhost && send.Recipient != recipient)
            return false;
        var its = send.Baseline is { } b && b <= max ? b : (long?)null;
        var later = own is not null ? send.Order > own.Order
            : its is { } theirs && ownBaseline is { } mine && mine <= max ? theirs >= mine
            : send.StartedAt >= ownHandOff;
        if (!later)
            return false;
        return its is { } from ? row.RowId > from
            : row.Date is not { } dated || (dated >= send.StartedAt - TimeSpan.FromSeconds(2) && dated <= send.StartedAt + longest);
    }

    /// <summary>
    /// Same text first, then a row whose text is ours doubled (a doubled decode). Without either, only a row whose text could not
    /// be read (no letters or digits: an attributedBody the reader could not decode, or a ghost row that names nobody), and,
    /// unless <paramref name="requireText"/>, dated no later than <paramref name="anyTextUntil"/> (while the script could
    /// still write it). A link's preview row comes last and is never taken for another text: it is ours only when the message
    /// was nothing but the link. Before, a send whose script ran took the oldest row of any text: a message typed by hand
    /// (or synced from the iPhone) to the same person, or the preview row of the next send's link, made an `unconfirmed` send
    /// that never went out `sent`, and its follow-ups went (black-box probe).
    /// </summary>
    internal static ChatMessage? Choose(IReadOnlyList<ChatMessage> rows, string content, bool requireText, DateTimeOffset? anyTextUntil = null)
    {
        var candidates = rows.OrderBy(r => r.IsUrlPreview).ThenBy(r => r.RowId).ToList();
        var want = TextKey(content);
        // A text of no letters or digits (emoji only) is compared as written: its key "" is every other emoji's too.
        bool Same(ChatMessage r) => want.Length > 0 ? TextKey(r.Text) == want : !Unreadable(r) && Written(r.Text) == Written(content);
        return candidates.FirstOrDefault(Same)
            // Ours twice over, as Messages serialises a run twice in some attributedBody (imessage-kit's fixture): not any text
            // that holds ours ("Thanks again, see you Friday" typed by hand held "thanks": review).
            ?? candidates.FirstOrDefault(r => want.Length > 0 && TextKey(r.Text) == want + want)
            ?? (requireText
                ? candidates.FirstOrDefault(r => r.IsGhost)
                : candidates.FirstOrDefault(r => !r.IsUrlPreview && Unreadable(r)
                    && (anyTextUntil is null || r.Date is null || r.Date <= anyTextUntil)));
    }

    /// <summary>No text could be read from the row (none, or only attachment marks).</summary>
    private static bool Unreadable(ChatMessage r) => string.IsNullOrWhiteSpace(r.Text?.Replace("\uFFFC", ""));

    private static string Written(string? text) => (text ?? "").Normalize(System.Text.NormalizationForm.FormC).Trim();

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
        var ours = (await Store.QueryAsync(DeliverySql.AwaitingConfirmation, ct: ct)).Where(m => m.ChannelRef is not null).ToList();
        ours.AddRange(await Store.QueryAsync(DeliverySql.Tracked, new { Now = NowMs }, ct));
        if (ours.Count == 0)
            return;
        var rows = bridge.Reader.ReadByGuids(ours.Select(m => m.ChannelRef!).Distinct().ToList()).ToDictionary(r => r.Guid);
        foreach (var m in ours.DistinctBy(m => m.Id))
            if (rows.TryGetValue(m.ChannelRef!, out var row))
                await ApplyAsync(m, row, ct);
    }

    internal async Task ApplyAsync(MessageRow m, ChatMessage row, CancellationToken ct)
    {
        if (m.Status == MessageStatus.Failed && m.ErrorCode == FailureCodes.Unconfirmed)
        {
            if (row.IsGhost)
                await lifecycle.FailLateAsync(m.Id, FailureCodes.GhostRow,
                    "Messages wrote an empty SMS row outside any chat (macOS 26 fault); not delivered.", row.Error, "chat.db settled an unconfirmed send: it failed", ct);
            else if (row.Error != 0)
                await FailWithErrorAsync(m, row, ct, settlingUnconfirmed: true);
            else if (row.IsConfirmedSent && await lifecycle.ConfirmLateAsync(m.Id, row.Date ?? Clock.GetUtcNow(),
                         Clock.GetUtcNow() + bridge.Options.TrackDeliveryFor, "chat.db confirmed it after the confirmation timeout", ct) is { } late)
                await ApplyAsync(late, row, ct);
            return;
        }
        if (m.Status == MessageStatus.Sending)
        {
            if (row.IsGhost)
            {
                await FailAsync(m, FailureCodes.GhostRow, 0,
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
            var sent = await lifecycle.ConfirmAsync(m.Id, row.Date ?? Clock.GetUtcNow(), Clock.GetUtcNow() + bridge.Options.TrackDeliveryFor,
                $"confirmed by chat.db ({row.Service}{(row.WasDowngraded ? ", downgraded to SMS" : "")})", ct);
            if (sent is null)
                return;
            m = sent;
        }

        if (m.Status != MessageStatus.Sent)
            return;
        if (row.Error != 0 && m.Delivery != DeliveryState.NotDelivered)
        {
            await lifecycle.NotDeliveredAsync(m.Id, ErrorCodeFor(row), row.Error, $"Messages reported error {row.Error} after sending", ct);
            return;
        }
        // Delivered first, even when the same pass (or a restart) finds it read too: deliveredAt is chat.db's date_delivered, and
        // the `delivered` event and webhook are not skipped (probe H: deliveredAt was the read time, no `message.delivered`).
        if (row.IsDelivered && m.Delivery == DeliveryState.Unknown
            && await lifecycle.DeliveredAsync(m.Id, row.DateDelivered ?? row.DateRead ?? Clock.GetUtcNow(), "delivered (chat.db is_delivered)", ct: ct) is { } delivered)
            m = delivered;
        if (row.DateRead is { } readAt && m.Delivery != DeliveryState.Read)
            await lifecycle.ReadAsync(m.Id, readAt, "read (chat.db date_read)", ct);
    }

    /// <summary>
    /// A send chat.db shows failed: its reason, and for an iMessage to a number without iMessage the SMS that goes out
    /// instead (where the line falls back). <paramref name="settlingUnconfirmed"/>: the send had already failed `unconfirmed`
    /// (the error came after the confirmation timeout); it falls back the same way unless it was retried meanwhile.
    /// </summary>
    private async Task FailWithErrorAsync(MessageRow m, ChatMessage row, CancellationToken ct, bool settlingUnconfirmed = false)
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
        // An SMS the line cannot send until someone changes something (Messages with no SMS account: no Text Message
        // Forwarding) would only fail again: the iMessage fails with that reason instead of a second failed message.
        var noSms = fallback ? await channels.Resolve(line!, Messages.MessageType.Sms).LastingProblemAsync(line!, Messages.MessageType.Sms, ct) : null;
        if (!fallback || noSms is not null)
        {
            var why = reason + (code == NoIMessage && m.Type == Messages.MessageType.IMessage
                ? m.RecipientPhone is null ? " No phone number to fall back to SMS."
                : noSms is not null ? $" Not sent again as SMS: {noSms}"
                : $" Line '{m.LineId}' does not fall back to SMS."
                : "");
            if (settlingUnconfirmed)
                await lifecycle.FailLateAsync(m.Id, code, why, row.Error, "chat.db settled an unconfirmed send: it failed", ct);
            else
                await FailAsync(m, code, row.Error, why, ct);
            return;
        }

        var now = Clock.GetUtcNow();
        var sms = new MessageRow
        {
            Id = Ids.New("msg", now), Content = m.Content, Type = Messages.MessageType.Sms, RequestedType = m.RequestedType,
            Status = MessageStatus.Queued, LineId = m.LineId, LeadId = m.LeadId, BatchId = m.BatchId,
            RecipientPhone = m.RecipientPhone, RecipientEmail = m.RecipientEmail, RecipientName = m.RecipientName,
            DueAt = Time.ToMs(now), CreatedAt = Time.ToMs(now), UpdatedAt = Time.ToMs(now), FallbackFrom = m.Id, DryRun = m.DryRun,
        };
        var done = await lifecycle.FallbackAsync(m.Id, code, reason + $" Sent again as SMS: {sms.Id}.", row.Error, sms,
            $"SMS fallback for {m.Id} (iMessage error 22)", ct, settlingUnconfirmed);
        if (done is not null)
            log.LogInformation("{Id}: no iMessage for {Recipient}; falling back to SMS {Sms}", m.Id, m.Recipient, sms.Id);
        else if (settlingUnconfirmed)
            // Retried meanwhile: the retry is the message that goes out; this one only gets its real reason.
            await lifecycle.FailLateAsync(m.Id, code, reason + " Not sent again as SMS: it was retried.", row.Error,
                "chat.db settled an unconfirmed send: it failed", ct);
    }

    private Task<MessageRow?> FailAsync(MessageRow m, string code, long channelError, string message, CancellationToken ct) =>
        lifecycle.FailDeliveryAsync(m.Id, code, message, channelError, ct);

    private async Task FailUnconfirmedAsync(DateTimeOffset now, CancellationToken ct)
    {
        var awaiting = await Store.QueryAsync(DeliverySql.AwaitingConfirmation, ct: ct);
        var timeout = bridge.Options.ConfirmTimeout;
        // From the channel's acceptance: a send held by a consent dialog has not started its clock yet.
        foreach (var m in awaiting.Where(m => now - Time.FromMs(m.AcceptedAt!.Value) >= timeout))
            await lifecycle.FailUnconfirmedAsync(m.Id, m.ChannelRef is null
                    ? $"The send was handed to Messages but no matching row appeared in chat.db within {timeout.TotalSeconds:0} s. It may or may not have gone out; it is not resent automatically (chat.db is still watched for it)."
                    : $"chat.db has the row ({m.ChannelRef}) but Messages did not mark it sent within {timeout.TotalSeconds:0} s. Not resent automatically (still watched).",
                now + bridge.Options.TrackDeliveryFor, ct);
    }

    private const string NoIMessage = FailureCodes.IMessageUnavailable;
    private const string NotDeliverable = FailureCodes.NotDeliverable;

    /// <summary>
    /// Error 22 means "not deliverable on this service": only an iMessage row says the address has no iMessage.
    /// The same number on an SMS or RCS row is about that service and must not paint the address gray.
    /// </summary>
    public static string ErrorCodeFor(ChatMessage row) =>
        row.Error != 22 ? FailureCodes.MessagesError : row.IsIMessage ? NoIMessage : NotDeliverable;

    private async Task<bool> GuidTakenAsync(string guid, CancellationToken ct)
    {
        await using var c = await Store.Db.OpenAsync(ct);
        return await c.ExecuteScalarAsync<long>(new CommandDefinition(DeliverySql.GuidTaken, new { Guid = guid }, cancellationToken: ct)) > 0;
    }

    private long NowMs => Time.ToMs(Clock.GetUtcNow());
}
