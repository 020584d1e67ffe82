using Dapper;
using LineAgent.Lines;
using LineAgent.Messages;
using LineAgent.Storage;

namespace LineAgent.Scheduling;

/// <summary>
/// Plays a line's dispatcher forward in memory: what is already pending on the line plus the rows a request would
/// add, taken in the dispatcher's order (due time, then acceptance order), each decided by the same
/// <see cref="PacingRules.Decide"/> the real pacer runs, on a hand-off history that starts as the database's and
/// grows with every simulated send. Holds behave as the dispatcher's do: a line-wide hold waits every due message,
/// the message's own limits (new-conversation cap, recipient hours) wait only it. A follow-up becomes due its
/// `after` past its previous step's simulated send. Jitter is taken at its mean.
/// </summary>
public sealed class PacingSimulation(LinePacer pacer, Db db, Suppressions.SuppressionList suppressions)
{
    /// <summary>Nothing is estimated further ahead than this.</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromDays(400);

    private const string PendingOnLine = """
        SELECT * FROM messages WHERE line_id = @LineId AND status IN ('scheduled','queued') ORDER BY seq
        """;

    // `+line_id`: found by address (ix_messages_phone, ix_messages_email), not by reading every handed-over row of the line.
    internal const string KnownPhones = """
        SELECT DISTINCT recipient_phone FROM messages
        WHERE +line_id = @LineId AND direction = 'outbound' AND handed_at IS NOT NULL AND recipient_phone IN (SELECT value FROM json_each(@Addresses))
        """;

    internal const string KnownEmails = """
        SELECT DISTINCT recipient_email FROM messages
        WHERE +line_id = @LineId AND direction = 'outbound' AND handed_at IS NOT NULL AND recipient_email IN (SELECT value FROM json_each(@Addresses))
        """;

    /// <summary>The outcome: when each new row would be handed over (null: not within the horizon), and how many were pending before.</summary>
    public sealed record Result(IReadOnlyDictionary<MessageRow, DateTimeOffset?> SendAt, int AlreadyPending, TimeZoneInfo Zone);

    public async Task<Result> RunAsync(LineOptions line, IReadOnlyList<MessageRow> newRows, DateTimeOffset now, CancellationToken ct)
    {
        var zone = SendWindow.Zone(line.Pacing.Window);
        List<MessageRow> pending;
        long maxSeq;
        await using (var c = await db.OpenAsync(ct))
        {
            pending = (await c.QueryAsync<MessageRow>(new CommandDefinition(PendingOnLine, new { LineId = line.Id }, cancellationToken: ct))).AsList();
            maxSeq = await c.ExecuteScalarAsync<long?>(new CommandDefinition("SELECT MAX(seq) FROM messages", cancellationToken: ct)) ?? 0;
        }
        var items = new List<Item>();
        foreach (var row in pending)
            items.Add(new Item(row, row.Seq, existing: true));
        foreach (var row in newRows.Where(r => MessageStatus.IsPending(r.Status)))
            items.Add(new Item(row, ++maxSeq, existing: false));

        // Each waiting step follows its previous step (by sequence and step).
        var bySequence = items.Where(i => i.Row.SequenceId is not null).ToLookup(i => i.Row.SequenceId!);
        foreach (var item in items.Where(i => i.Row.IsWaiting))
            bySequence[item.Row.SequenceId!].FirstOrDefault(p => p.Row.SequenceStep == item.Row.SequenceStep - 1 && p != item)?.Next.Add(item);

        var phones = items.Select(i => i.Row.RecipientPhone).OfType<string>().Distinct().ToArray();
        var emails = items.Select(i => i.Row.RecipientEmail).OfType<string>().Distinct().ToArray();
        var knownPhones = new HashSet<string>();
        var knownEmails = new HashSet<string>();
        await using (var c = await db.OpenAsync(ct))
        {
            knownPhones.UnionWith(await c.QueryAsync<string>(new CommandDefinition(KnownPhones, new { LineId = line.Id, Addresses = SqlList.Of(phones) }, cancellationToken: ct)));
            knownEmails.UnionWith(await c.QueryAsync<string>(new CommandDefinition(KnownEmails, new { LineId = line.Id, Addresses = SqlList.Of(emails) }, cancellationToken: ct)));
        }
        var suppressed = new HashSet<string>();
        foreach (var address in items.Where(i => i.Existing).Select(i => i.Row.Recipient).Distinct())
            if (await suppressions.IsSuppressedAsync(address, ct))
                suppressed.Add(address);

        var history = await pacer.HistoryAsync(line.Id, PacingRules.HistorySince(now, zone), ct);
        var jitter = PacingJitter.Mean(line.Pacing.Jitter);
        foreach (var item in items)
        {
            item.Paced = pacer.Applies(line, item.Row.Type);
            item.Hours = PacingRules.RecipientHours(line, item.Row, item.Paced);
            item.Rules = PacingRules.For(line, item.Paced);
        }

        Simulate(items.Where(i => !i.Row.IsWaiting).ToList(), history, now, jitter, zone,
            m =>
            {
                var (phone, email) = PacingRules.ConversationKey(m.Type, m.RecipientPhone, m.RecipientEmail);
                return (phone is not null && knownPhones.Contains(phone)) || (email is not null && knownEmails.Contains(email));
            },
            m =>
            {
                if (m.RecipientPhone is { } p) knownPhones.Add(p);
                if (m.RecipientEmail is { } e) knownEmails.Add(e);
            },
            m => suppressed.Contains(m.Recipient), ct);

        return new Result(items.Where(i => !i.Existing).ToDictionary(i => i.Row, i => i.SentAt), pending.Count(p => !p.IsWaiting), zone);
    }

    /// <remarks>
    /// Each step picks the first message in (due, acceptance) order that may go now. Finding it by a scan of everything
    /// pending made a 50,000-lead preview take 40-60 s (quadratic: probe); now the pending rows are a sorted set, the rows
    /// held by their own limits wait in a queue by the time they are free, and the line-wide holds are kept as a list:
    /// a line-wide hold at time h until u holds every row due at or before h (as before, when it was written into each of
    /// them), so a row due at d is held until the latest end of the holds made at or after d. Kept as a stack whose ends
    /// decrease (a hold that ends later makes the earlier ones it covers irrelevant), and only the holds that still hold:
    /// the rows it holds are then exactly those due at or before the last hold's time.
    /// </remarks>
    private static void Simulate(List<Item> pending, List<HandOff> history, DateTimeOffset now, TimeSpan jitter, TimeZoneInfo zone,
        Func<MessageRow, bool> known, Action<MessageRow> handedTo, Func<MessageRow, bool> isSuppressed, CancellationToken ct = default)
    {
        // The simulation runs on whole milliseconds, as the rows' times are: a hold that ends 5 s after a hand-off at a
        // fraction of a millisecond, cut down to its millisecond, ended just before the gap had passed, and the next
        // decision held again to the same millisecond until the guard below gave up (every later lead had no estimate).
        var t = Time.FromMs(CeilingMs(now));
        var end = now + Horizon;
        var nowMs = Time.ToMs(now);
        var order = new SortedSet<Item>(ByDueThenSeq.Instance);
        var held = new PriorityQueue<Item, long>();
        var lineHolds = new List<(long At, long Until)>();
        void Add(Item item, long atMs)
        {
            if (item.NotBefore is { } nb && nb > atMs)
                held.Enqueue(item, nb);
            else
                order.Add(item);
        }
        foreach (var item in pending)
            Add(item, Time.ToMs(t));

        // Steps are cheap now (log n), and a step may only move time to the next event that could free a row: more room than
        // the old scan's million (review).
        for (var guard = 0; order.Count + held.Count > 0 && guard < 4_000_000; guard++)
        {
            if ((guard & 4095) == 4095)
                ct.ThrowIfCancellationRequested();
            var tMs = Time.ToMs(t);
            while (held.TryPeek(out var free, out var until) && until <= tMs)
            {
                held.Dequeue();
                order.Add(free);
            }
            while (lineHolds.Count > 0 && lineHolds[^1].Until <= tMs)
                lineHolds.RemoveAt(lineHolds.Count - 1);
            // Rows due at or before the last line-wide hold still wait for it (or an earlier one that ends later).
            var heldUpTo = lineHolds.Count > 0 ? lineHolds[^1].At : long.MinValue;
            var next = heldUpTo < tMs && order.Count > 0
                ? order.GetViewBetween(Item.Bound(heldUpTo == long.MinValue ? long.MinValue : heldUpTo + 1, long.MinValue), Item.Bound(tMs, long.MaxValue)).Min
                : null;
            if (next is null)
            {
                // The earliest time anything may go, or a time before it: the next row to come due, the end of the last
                // line-wide hold, or the first row's own hold; each is later than now, so time moves on.
                var at = long.MaxValue;
                if (order.Count > 0 && order.GetViewBetween(Item.Bound(tMs + 1, long.MinValue), Item.Bound(long.MaxValue, long.MaxValue)).Min is { } due)
                    at = due.Due;
                if (lineHolds.Count > 0)
                    at = Math.Min(at, lineHolds[^1].Until);
                if (held.TryPeek(out _, out var firstFree))
                    at = Math.Min(at, firstFree);
                if (at == long.MaxValue)
                    return;
                t = Time.FromMs(at);
                if (t > end)
                    return;
                continue;
            }

            var decision = !next.Paced && next.Hours is null
                ? PacingDecision.Go
                : next.Rules!.Decide(history, new PacedMessage(next.Paced && !known(next.Row), jitter, next.Hours), t);
            if (decision.Hold is { } hold)
            {
                var until = CeilingMs(hold.NotBefore);
                if (hold.LineWide)
                {
                    while (lineHolds.Count > 0 && lineHolds[^1].Until <= until)
                        lineHolds.RemoveAt(lineHolds.Count - 1);
                    lineHolds.Add((tMs, until));
                }
                else
                {
                    order.Remove(next);
                    next.NotBefore = until;
                    Add(next, tMs);
                }
                continue;
            }

            order.Remove(next);
            if (isSuppressed(next.Row))
                continue; // the dispatcher fails it without a hand-off; its sequence stops
            next.SentAt = t;
            history.Add(new HandOff(t, decision.NewConversation));
            handedTo(next.Row);
            // Only what the next decision can look at is kept: the decision looks back at most a day and an hour.
            var since = PacingRules.HistorySince(t, zone);
            history.RemoveAll(h => h.At < since);
            foreach (var step in next.Next)
            {
                step.Due = Math.Max(nowMs, tMs + (step.Row.FollowUpAfter ?? 0));
                Add(step, tMs);
            }
        }
    }

    private sealed class ByDueThenSeq : IComparer<Item>
    {
        public static readonly ByDueThenSeq Instance = new();

        public int Compare(Item? x, Item? y) => x!.Due != y!.Due ? x.Due.CompareTo(y.Due) : x.Seq.CompareTo(y.Seq);
    }

    private static long CeilingMs(DateTimeOffset t) => Time.ToMs(t) + (t.UtcTicks % TimeSpan.TicksPerMillisecond == 0 ? 0 : 1);

    private sealed class Item(MessageRow row, long seq, bool existing)
    {
        /// <summary>A bound of a range of the sorted set, not a row.</summary>
        public static Item Bound(long due, long seq) => new(null!, seq, false) { Due = due };

        public MessageRow Row { get; } = row;
        public long Seq { get; } = seq;
        public bool Existing { get; } = existing;
        public long Due { get; set; } = row?.DueAt ?? 0;
        public long? NotBefore { get; set; } = row?.NotBefore;
        public bool Paced { get; set; }
        public RecipientHours? Hours { get; set; }
        public PacingRules? Rules { get; set; }
        public DateTimeOffset? SentAt { get; set; }
        public List<Item> Next { get; } = [];
    }
}
