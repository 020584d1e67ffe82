using System.Globalization;
using Dapper;
using LineAgent.Channels;
using LineAgent.Hosting;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;
using Microsoft.Extensions.Options;

namespace LineAgent.Scheduling;

/// <summary>
/// Per-line pacing from the line's own hand-offs in the database: a minimum gap with jitter, hourly and
/// daily caps, a cap on new conversations per day, and a send window in a time zone; and per message, the
/// recipient's own hours. A message over a limit is held (stays `queued` with `notBefore`); nothing is dropped.
/// The dry-run outbox is not paced (there is no account to protect) unless Agent:DryRunPacing is on; a
/// recipient window given on the send applies always. The decision itself is <see cref="PacingRules.Decide"/>,
/// which the bulk preview runs on its simulated history: what the preview says is what this does, but for the time each
/// send takes at its channel (the gap counts from its end), which the preview takes as none.
/// </summary>
public sealed class LinePacer(Db db, ChannelRouter router, IOptions<AgentOptions> agent, TimeProvider time, PacingJitter? jitter = null) : IPacer, ILineUsage
{
    private const string HandOffs = """
        SELECT handed_at AS At, new_conversation AS NewConversation, COALESCE(accepted_at, sent_at) AS Ended FROM messages
        WHERE line_id = @LineId AND handed_at IS NOT NULL AND handed_at >= @Since
        ORDER BY handed_at
        """;

    internal const string KnownAddress = """
        SELECT EXISTS (SELECT 1 FROM messages
        WHERE +line_id = @LineId AND direction = 'outbound' AND id <> @Id
          AND ((@Phone IS NOT NULL AND recipient_phone = @Phone AND handed_at IS NOT NULL)
            OR (@Email IS NOT NULL AND recipient_email = @Email AND handed_at IS NOT NULL)))
        """;

    public PacingJitter Jitter { get; } = jitter ?? new PacingJitter();

    /// <summary>When each line's last send came back from its channel: its outcome may not be on disk yet (it shares the next commit).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> _ended = new();

    public void SendEnded(string lineId, DateTimeOffset at) => _ended.AddOrUpdate(lineId, at, (_, before) => at > before ? at : before);

    public bool Applies(LineOptions line, string type) => line.Pacing.Enabled && Counts(line, type);

    /// <summary>
    /// Whether the line's sends of <paramref name="type"/> reach an account that pacing protects (every channel but the
    /// dry-run outbox, unless Agent:DryRunPacing): then each hand-off records whether it opened a new conversation, also
    /// while the line is not paced, so pacing turned on later that day counts what already went out.
    /// </summary>
    private bool Counts(LineOptions line, string type) => agent.Value.DryRunPacing || !router.Resolve(line, type).Capabilities.IsDryRun;

    public async Task<PacingDecision> CheckAsync(LineOptions line, MessageRow message, DateTimeOffset now, CancellationToken ct)
    {
        var counts = Counts(line, message.Type);
        var paced = line.Pacing.Enabled && counts;
        var recipient = PacingRules.RecipientHours(line, message, paced);
        // Asked before the early return below: an unpaced line's first message to an address was recorded as no new
        // conversation, so its newConversationsToday stayed 0, and a restart with pacing on started that day's cap from 0.
        var isNew = counts && !await KnownAsync(line.Id, message, ct);
        if (!paced && recipient is null)
            return isNew ? new PacingDecision(null, NewConversation: true) : PacingDecision.Go;
        var rules = PacingRules.For(line, paced);
        var history = paced ? await HistoryAsync(line.Id, PacingRules.HistorySince(now, rules.Zone), ct) : [];
        var decision = rules.Decide(history, new PacedMessage(isNew, Jitter.Draw(PacingJitter.GapKey(line.Id, history), line.Pacing.Jitter), recipient), now);
        // Held for its recipient's hours: if they never meet the line's window (a line's window changed, a reschedule into
        // another season), holding again and again would keep it for ever; it fails with the reason instead.
        if (decision is { Unsettled: true, Hold.LineWide: false } && NeverInWindow(line, message, now) is { } never)
            return decision with { Hold = null, Never = never };
        return decision;
    }

    /// <summary>How far ahead a message's recipient hours are looked for inside its line's send window.</summary>
    public static readonly TimeSpan WindowSearch = TimeSpan.FromDays(14);

    /// <summary>
    /// Why <paramref name="row"/> could never be sent: its recipient's hours never fall within the line's send window (on a
    /// paced line) in the <see cref="WindowSearch"/> from its due time. Null when it can be.
    /// </summary>
    /// <param name="dueAt">A due time to judge instead of the row's (an edit that moves it).</param>
    public string? NeverInWindow(LineOptions line, MessageRow row, DateTimeOffset now, long? dueAt = null)
    {
        var paced = Applies(line, row.Type);
        if (!paced || PacingRules.RecipientHours(line, row, paced) is not { } hours)
            return null;
        var window = line.Pacing.Window;
        var lineZone = SendWindow.Zone(window);
        var from = Time.FromMs(Math.Max(dueAt ?? row.DueAt, Time.ToMs(now)));
        return SendWindow.FirstOpenInBoth(window, lineZone, hours.Window, hours.Zone, from, WindowSearch) is null
            ? $"The recipient's hours {hours.Window.From}-{hours.Window.To} ({hours.Zone.Id}) never fall within line '{line.Id}''s send window " +
              $"{window.From}-{window.To} ({lineZone.Id}) in the {WindowSearch.TotalDays:0} days from {Time.Iso(from)}, so it would never be sent. Widen either window."
            : null;
    }

    public async Task<object?> TodayAsync(LineOptions line, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var p = line.Pacing;
        var zone = SendWindow.Zone(p.Window);
        var history = await HistoryAsync(line.Id, PacingRules.HistorySince(now, zone), ct);
        var dayStart = SendWindow.DayStart(now, zone);
        // Where pacing does not apply (off, or the dry-run outbox) the window holds nothing back.
        var paced = Applies(line, MessageType.IMessage);
        var nextOpen = paced ? SendWindow.NextOpen(p.Window, zone, now) : now;
        // When the line's next send may go, as the dispatcher decides it (with the gap's own jitter), and a first message to a
        // new conversation when the day's cap of those holds it longer (probe J: a capped line did not say when it sends again).
        PacingHold? next = null, nextNew = null;
        if (paced)
        {
            var rules = PacingRules.For(line, linePaced: true);
            var jitter = Jitter.Draw(PacingJitter.GapKey(line.Id, history), p.Jitter);
            next = rules.Decide(history, new PacedMessage(IsNew: false, jitter, null), now).Hold;
            nextNew = rules.Decide(history, new PacedMessage(IsNew: true, jitter, null), now).Hold;
            if (nextNew is not null && nextNew.NotBefore <= (next?.NotBefore ?? now))
                nextNew = null;
        }
        return new LineUsage(
            paced, history.Count(h => h.At > now - TimeSpan.FromHours(1)), p.MaxPerHour,
            history.Count(h => h.At >= dayStart), p.MaxPerDay,
            history.Count(h => h.NewConversation && h.At >= dayStart), p.MaxNewConversationsPerDay,
            history.Count > 0 ? history[^1].At : null, nextOpen <= now, nextOpen <= now ? null : nextOpen, zone.Id)
        {
            HeldUntil = next?.NotBefore,
            HeldBecause = next?.Reason,
            NewConversationsHeldUntil = nextNew?.NotBefore,
        };
    }

    /// <summary>The line's hand-offs since <paramref name="since"/>, oldest first.</summary>
    public async Task<List<HandOff>> HistoryAsync(string lineId, DateTimeOffset since, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var rows = await c.QueryAsync<(long At, long NewConversation, long? Ended)>(new CommandDefinition(HandOffs,
            new { LineId = lineId, Since = Time.ToMs(since) }, cancellationToken: ct));
        var history = rows.Select(r => new HandOff(Time.FromMs(r.At), r.NewConversation != 0, r.Ended is { } e ? Time.FromMs(e) : null)).ToList();
        // The last send's return from its channel, as this process saw it: its outcome may not be written yet.
        if (history.Count > 0 && _ended.TryGetValue(lineId, out var ended) && ended > history[^1].GapFrom)
            history[^1] = history[^1] with { Ended = ended };
        return history;
    }

    private async Task<bool> KnownAsync(string lineId, MessageRow m, CancellationToken ct)
    {
        await using var c = await db.OpenAsync(ct);
        var (phone, email) = PacingRules.ConversationKey(m.Type, m.RecipientPhone, m.RecipientEmail);
        return await c.ExecuteScalarAsync<long>(new CommandDefinition(KnownAddress,
            new { LineId = lineId, m.Id, Phone = phone, Email = email }, cancellationToken: ct)) > 0;
    }
}

/// <summary>How much of a line's jitter one message gets. Tests may fix it (e.g. at its mean) to compare with a preview.</summary>
public class PacingJitter
{
    /// <summary>
    /// A stable share of the jitter per <paramref name="key"/> (<see cref="GapKey"/>: one gap of a line), so re-checks agree
    /// with each other.
    /// </summary>
    public virtual TimeSpan Draw(string key, TimeSpan jitter)
    {
        if (jitter <= TimeSpan.Zero) return TimeSpan.Zero;
        var hash = 2166136261u;
        foreach (var ch in key) hash = (hash ^ ch) * 16777619u;
        return TimeSpan.FromMilliseconds(jitter.TotalMilliseconds * (hash % 10_000) / 10_000.0);
    }

    /// <summary>
    /// The jitter is the gap's, between the line's last send and its next, the same whichever message asks: drawn per message,
    /// a message accepted later could draw less than the earlier ones, which a line-wide hold had held longer, and go out
    /// before them (probe K: a second bulk overtook the first's queued messages on a paced line, against the due order).
    /// </summary>
    public static string GapKey(string lineId, IReadOnlyList<HandOff> history) =>
        history.Count == 0 ? lineId : $"{lineId}\n{history[^1].At.ToUnixTimeMilliseconds()}";

    /// <summary>What the preview assumes: the jitter's mean.</summary>
    public static TimeSpan Mean(TimeSpan jitter) => jitter <= TimeSpan.Zero ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Floor(jitter.TotalMilliseconds / 2));
}

/// <summary>
/// One hand-off of a line: when, whether it opened a new conversation, and when its channel was done with it (the script
/// returned, the server answered), if known: the minimum gap counts from then (<see cref="GapFrom"/>). Counted from the
/// hand-off, a Messages send that took 3 s of a 5 s gap left 0.7 s before the next (probe J).
/// </summary>
public sealed record HandOff(DateTimeOffset At, bool NewConversation, DateTimeOffset? Ended = null)
{
    public DateTimeOffset GapFrom => Ended is { } e && e > At ? e : At;
}

/// <summary>The recipient's hours for one message: the window and the zone it is read in.</summary>
public sealed record RecipientHours(SendWindowOptions Window, TimeZoneInfo Zone);

/// <summary>What the decision needs to know about the message itself.</summary>
public sealed record PacedMessage(bool IsNew, TimeSpan Jitter, RecipientHours? Recipient);

/// <summary>
/// A line's pacing as a pure function of its hand-off history: the one decision both the dispatcher (history from
/// the database) and the bulk preview (history it simulates) use.
/// </summary>
public sealed record PacingRules(PacingOptions Pacing, TimeZoneInfo Zone, bool LinePaced)
{
    public static PacingRules For(LineOptions line, bool linePaced) => new(line.Pacing, SendWindow.Zone(line.Pacing.Window), linePaced);

    /// <summary>How far back the decision looks: the last hour, and the line's day (from an hour before it starts).</summary>
    public static DateTimeOffset HistorySince(DateTimeOffset now, TimeZoneInfo zone) =>
        new[] { now - TimeSpan.FromHours(1), SendWindow.DayStart(now, zone) - TimeSpan.FromHours(1) }.Min();

    /// <summary>The addresses that make a conversation "known" on a line (the phone, or the email for email).</summary>
    public static (string? Phone, string? Email) ConversationKey(string type, string? phone, string? email) =>
        (type == MessageType.Email ? null : phone, type == MessageType.Email || phone is null ? email : null);

    /// <summary>The recipient window that applies to a message: its own (always), else the line's (while the line is paced).</summary>
    public static RecipientHours? RecipientHours(LineOptions line, MessageRow m, bool linePaced)
    {
        SendWindowOptions? window = RecipientWindowDto.Parse(m.RecipientWindow)?.ToWindow();
        if (window is null && linePaced && HasHours(line.Pacing.RecipientWindow))
            window = new SendWindowOptions { From = line.Pacing.RecipientWindow.From, To = line.Pacing.RecipientWindow.To };
        if (window is null)
            return null;
        var zone = m.RecipientTimeZone is { } id && Schedules.TryFindZone(id, out var z)
            ? z!
            : RecipientZones.Resolve(m.Type == MessageType.Email ? null : m.RecipientPhone, null, line).Zone;
        return new RecipientHours(window, zone);
    }

    public static bool HasHours(SendWindowOptions w) => SendWindow.TryParse(w.From, out _) && SendWindow.TryParse(w.To, out _);

    /// <summary>
    /// Every setting a line's holds are decided by, as one string: a start whose string differs from the last run's decides
    /// the line's held messages again (StartupRecovery).
    /// </summary>
    public static string Fingerprint(LineOptions line, Hosting.AgentOptions agent)
    {
        var p = line.Pacing;
        // The window's zone as it is used: an empty Window:TimeZone is the machine's, which may change (review).
        static string W(SendWindowOptions w) => $"{w.From}-{w.To} {SendWindow.Zone(w).Id} {string.Join(",", w.Days.Order())}";
        return string.Join("|", p.Enabled, p.MinGap.Ticks, p.Jitter.Ticks, p.MaxPerHour, p.MaxPerDay, p.MaxNewConversationsPerDay,
            W(p.Window), $"{p.RecipientWindow.From}-{p.RecipientWindow.To}", agent.DryRun, agent.DryRunPacing);
    }

    /// <summary>
    /// When the message may go: null hold = now. Each limit may push the time later; the loop repeats until no
    /// limit moves it. A hold set by the message's own limits (new-conversation cap, recipient hours) holds only it.
    /// </summary>
    public PacingDecision Decide(IReadOnlyList<HandOff> handOffs, PacedMessage m, DateTimeOffset now)
    {
        var p = Pacing;
        var zone = Zone;
        var since = HistorySince(now, zone);
        var history = handOffs.Where(h => h.At >= since).ToList();
        var t = now;
        string? reason = null;
        var lineWide = true;
        var settled = false;
        for (var i = 0; i < 20 && !settled; i++)
        {
            var before = t;
            if (LinePaced)
            {
                var window = SendWindow.NextOpen(p.Window, zone, t);
                if (window > t) (t, reason) = (window, $"outside the send window {p.Window.From}-{p.Window.To} {zone.Id}");

                if (history.Count > 0 && p.MinGap > TimeSpan.Zero)
                {
                    var gap = history.Max(h => h.GapFrom) + p.MinGap + m.Jitter;
                    if (gap > t) (t, reason) = (gap, $"minimum gap {p.MinGap.TotalSeconds:0} s (+ jitter) after the last send ended");
                }
                if (p.MaxPerHour > 0)
                {
                    var lastHour = history.Where(h => h.At > t - TimeSpan.FromHours(1)).ToList();
                    if (lastHour.Count >= p.MaxPerHour)
                        (t, reason) = (lastHour[lastHour.Count - p.MaxPerHour].At + TimeSpan.FromHours(1), $"{p.MaxPerHour} sends per hour reached");
                }
                var dayStart = SendWindow.DayStart(t, zone);
                if (p.MaxPerDay > 0 && history.Count(h => h.At >= dayStart) >= p.MaxPerDay)
                    (t, reason) = (SendWindow.DayStart(dayStart + TimeSpan.FromHours(30), zone), $"{p.MaxPerDay} sends per day reached");
                if (m.IsNew && p.MaxNewConversationsPerDay > 0
                    && history.Count(h => h.NewConversation && h.At >= SendWindow.DayStart(t, zone)) >= p.MaxNewConversationsPerDay)
                {
                    (t, reason) = (SendWindow.DayStart(SendWindow.DayStart(t, zone) + TimeSpan.FromHours(30), zone),
                        $"{p.MaxNewConversationsPerDay} new conversations per day reached");
                    lineWide = false;
                }
            }
            if (m.Recipient is { } r)
            {
                var open = SendWindow.NextOpen(r.Window, r.Zone, t);
                if (open > t)
                {
                    (t, reason) = (open, $"outside the recipient's hours {r.Window.From}-{r.Window.To} {r.Zone.Id}");
                    lineWide = false;
                }
            }
            settled = t == before;
        }
        // Twenty steps without a time every limit agrees on: the limits may never agree (CheckAsync looks).
        return new PacingDecision(t > now ? new PacingHold(t, reason!, lineWide) : null, m.IsNew) { Unsettled = !settled };
    }
}

public sealed record LineUsage(
    bool PacingEnabled, int SentLastHour, int MaxPerHour, int SentToday, int MaxPerDay, int NewConversationsToday,
    int MaxNewConversationsPerDay, DateTimeOffset? LastSendAt, bool WindowOpen, DateTimeOffset? WindowOpensAt, string TimeZone)
{
    /// <summary>
    /// Until when pacing holds the line's next send (the minimum gap with its jitter, a cap, the send window); a recipient's own
    /// hours may hold one message longer. Null when a send may go now.
    /// </summary>
    public DateTimeOffset? HeldUntil { get; init; }

    /// <summary>Why (<see cref="HeldUntil"/>), the limit that holds it last, in the words of the messages' `paced` events.</summary>
    public string? HeldBecause { get; init; }

    /// <summary>Until when the day's cap of new conversations holds a first message to an address, when later than <see cref="HeldUntil"/>.</summary>
    public DateTimeOffset? NewConversationsHeldUntil { get; init; }
}

/// <summary>The send window of a line: HH:mm to HH:mm on the given days, in an IANA zone, DST-aware.</summary>
public static class SendWindow
{
    public static TimeZoneInfo Zone(SendWindowOptions w) =>
        !string.IsNullOrWhiteSpace(w.TimeZone) && Schedules.TryFindZone(w.TimeZone, out var z) ? z! : TimeZoneInfo.Local;

    public static DateTimeOffset DayStart(DateTimeOffset t, TimeZoneInfo zone)
    {
        var local = TimeZoneInfo.ConvertTime(t, zone);
        return Schedules.FromLocal(local.Date, zone);
    }

    public static bool TryParse(string? hhmm, out TimeSpan time) =>
        TimeSpan.TryParseExact(hhmm ?? "", @"hh\:mm", CultureInfo.InvariantCulture, out time);

    /// <summary><paramref name="t"/> when the window is open then, else the next opening.</summary>
    public static DateTimeOffset NextOpen(SendWindowOptions w, TimeZoneInfo zone, DateTimeOffset t)
    {
        var hasHours = TryParse(w.From, out var from) & TryParse(w.To, out var to);
        if (!hasHours && w.Days.Count == 0)
            return t;
        if (!hasHours)
            (from, to) = (TimeSpan.Zero, TimeSpan.Zero);
        if (IsOpen(w, zone, t, from, to, hasHours))
            return t;
        var localDate = TimeZoneInfo.ConvertTime(t, zone).Date;
        for (var d = -1; d <= 8; d++)
        {
            var date = localDate.AddDays(d);
            if (w.Days.Count > 0 && !w.Days.Contains(date.DayOfWeek))
                continue;
            var opening = Schedules.FromLocal(date + from, zone);
            if (opening > t)
                return opening;
            // On the night clocks go back, an opening time in the repeated hour comes twice (01:30 EDT, then 01:30 EST):
            // after the first has passed, the second is still ahead.
            if (zone.IsAmbiguousTime(date + from)
                && new DateTimeOffset(date + from, zone.GetAmbiguousTimeOffsets(date + from).Min()) is var again && again > t)
                return again;
        }
        return t; // no day is allowed: treat as always open rather than never sending
    }

    /// <summary>
    /// The first time at or after <paramref name="t"/> when both windows are open, looked for up to <paramref name="within"/>
    /// ahead; null when they never are (09:00-10:00 in Sydney against 08:00-21:00 UTC). Each step moves to the next
    /// opening of one of them, so it ends in a few steps per day.
    /// </summary>
    public static DateTimeOffset? FirstOpenInBoth(SendWindowOptions a, TimeZoneInfo zoneA, SendWindowOptions b, TimeZoneInfo zoneB,
        DateTimeOffset t, TimeSpan within)
    {
        var end = t + within;
        for (var step = 0; t <= end && step < 1_000; step++)
        {
            var openA = NextOpen(a, zoneA, t);
            var openB = NextOpen(b, zoneB, openA);
            if (openB == openA)
                return openA;
            t = openB;
        }
        return null;
    }

    private static bool IsOpen(SendWindowOptions w, TimeZoneInfo zone, DateTimeOffset t, TimeSpan from, TimeSpan to, bool hasHours)
    {
        var local = TimeZoneInfo.ConvertTime(t, zone);
        var tod = local.TimeOfDay;
        if (!hasHours || from == to)
            return w.Days.Count == 0 || w.Days.Contains(local.DayOfWeek);
        if (from < to)
            return (w.Days.Count == 0 || w.Days.Contains(local.DayOfWeek)) && tod >= from && tod < to;
        // Overnight window (e.g. 20:00-02:00): the part after midnight belongs to the previous day's window.
        return tod >= from
            ? w.Days.Count == 0 || w.Days.Contains(local.DayOfWeek)
            : tod < to && (w.Days.Count == 0 || w.Days.Contains(local.AddDays(-1).DayOfWeek));
    }
}
