using LineAgent.Bridge.ChatDb;
using LineAgent.Channels.Messages;
using LineAgent.Delivery;

namespace LineAgent.Tests.Bridge;

/// <summary>
/// Which chat.db rows the delivery watcher keeps from a send because another send, whose outcome it has not read, may have
/// written them (MessagesSendsInFlight, DeliveryWatcher.MayBeItsRow).
/// </summary>
public sealed class SendsInFlightTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Longest = TimeSpan.FromMinutes(7);

    private static ChatMessage Row(long rowId, string? handle, string? text, DateTimeOffset date, bool inChat = true) =>
        new(rowId, $"G-{rowId}", text, handle, "iMessage", IsFromMe: true, Error: 0, IsSent: true, IsFinished: true, IsDelivered: false,
            date, null, null, ItemType: 0, AssociatedMessageType: 0, WasDowngraded: false, ScheduleType: 0, InChat: inChat);

    [Test]
    public void ARow_ShouldBeKept_OnlyAboveTheBaselineOfALaterSendToThatPerson_OrAnyoneForAGhostRow()
    {
        var other = new MessagesSendsInFlight.Send("msg_b", "+12025550904", Baseline: 100, StartedAt: T0, RecordedAt: null, ChangedTicks: 0);
        bool Kept(ChatMessage row, string recipient = "+12025550904", long? own = 90, long max = 120) =>
            DeliveryWatcher.MayBeItsRow(other, row, recipient, null, own, T0.AddSeconds(-10), max, Longest);

        Assert.That(Kept(Row(100, "+12025550904", "hi", T0.AddSeconds(5))), Is.False, "at or below its baseline: written before its script started");
        Assert.That(Kept(Row(101, "+12025550904", "hi", T0.AddSeconds(-60))), Is.True, "above it, whatever its date");
        Assert.That(Kept(Row(101, "+12025550999", "hi", T0), "+12025550999"), Is.False, "another person's send");
        Assert.That(Kept(Row(101, null, null, T0, inChat: false), "+12025550999"), Is.True, "a ghost row names nobody: it may be any send's");
        Assert.That(Kept(Row(101, "+12025550904", "hi", T0), own: 110), Is.False,
            "a send whose script started after the other's: the other's rows are below this one's baseline (review: a send " +
            "whose outcome lost its baseline held the rows of every later send to the person)");

        var noBaseline = other with { Baseline = null };
        bool KeptByDate(ChatMessage row) => DeliveryWatcher.MayBeItsRow(noBaseline, row, "+12025550904", null, 90, T0.AddSeconds(-10), 120, Longest);
        Assert.That(KeptByDate(Row(5, "+12025550904", "hi", T0.AddSeconds(-3))), Is.False,
            "without a baseline: rows dated before its script started (2 s of slack) are not its");
        Assert.That(KeptByDate(Row(5, "+12025550904", "hi", T0.AddSeconds(-1))), Is.True);
        Assert.That(KeptByDate(Row(6, "+12025550904", "hi", T0 + Longest + TimeSpan.FromSeconds(1))), Is.False,
            "dated after its script could have run: not its");

        // chat.db rebuilt under the sends: MAX(ROWID) is below the baselines, which then say nothing; the dates decide.
        Assert.That(Kept(Row(3, "+12025550904", "hi", T0.AddSeconds(1)), max: 3), Is.True, "a new row after a rebuild: by date, its");
        Assert.That(Kept(Row(2, "+12025550904", "hi", T0.AddSeconds(-30)), max: 3), Is.False, "an older one: not its");
    }

    /// <summary>
    /// Equal baselines (nothing was written between two scripts), or none (chat.db busy), do not say which send is the later:
    /// the order their scripts started in does, when both ran in this process (review: with equal baselines, a later send's
    /// row counted as an earlier timed-out send's, which then took it by its text).
    /// </summary>
    [Test]
    public void WhichSendIsTheLater_ShouldBeTheOrderTheScriptsStartedIn_WhenBothAreKnown()
    {
        var sends = new MessagesSendsInFlight();
        sends.Started("msg_early", "+12025550904", 100, T0);
        sends.Started("msg_late", "+12025550904", 100, T0);
        var early = sends.Snapshot().Single(s => s.MessageId == "msg_early");
        var late = sends.Snapshot().Single(s => s.MessageId == "msg_late");
        var row = Row(101, "+12025550904", "same text", T0.AddSeconds(1));

        Assert.That(DeliveryWatcher.MayBeItsRow(late, row, "+12025550904", early, 100, T0, 120, Longest), Is.True, "the later send's row is held from the earlier");
        Assert.That(DeliveryWatcher.MayBeItsRow(early, row, "+12025550904", late, 100, T0, 120, Longest), Is.False, "the earlier one does not hold the later's row");
        var noBaselines = (early: early with { Baseline = null }, late: late with { Baseline = null });
        Assert.That(DeliveryWatcher.MayBeItsRow(noBaselines.late, row, "+12025550904", noBaselines.early, null, T0, 120, Longest), Is.True);
        Assert.That(DeliveryWatcher.MayBeItsRow(noBaselines.early, row, "+12025550904", noBaselines.late, null, T0, 120, Longest), Is.False);
    }

    [Test]
    public void ASend_ShouldBeUnseen_UntilAPassThatBeganAfterItsOutcomeWasRecorded()
    {
        var sends = new MessagesSendsInFlight();
        sends.Started("msg_a", "+12025550904", 10, T0);
        var before = sends.Mark;
        Assert.That(sends.Snapshot().Where(s => MessagesSendsInFlight.UnseenBy(s, before)).Select(s => s.MessageId), Is.EqualTo(new[] { "msg_a" }),
            "its script runs");

        sends.Recorded("msg_a");
        Assert.That(sends.Snapshot().Where(s => MessagesSendsInFlight.UnseenBy(s, before)).Select(s => s.MessageId), Is.EqualTo(new[] { "msg_a" }),
            "a pass that read its sends before the outcome was written has not seen it");
        Assert.That(sends.Snapshot().Where(s => MessagesSendsInFlight.UnseenBy(s, sends.Mark)), Is.Empty,
            "a pass that began after it reads the outcome (and its baseline) from the database");
        Assert.That(sends.Snapshot().Single().Baseline, Is.EqualTo(10), "kept a while: an outcome written without its baseline still has it here");
        sends.Recorded("msg_unknown");
        Assert.That(sends.Snapshot().Select(s => s.MessageId), Is.EqualTo(new[] { "msg_a" }));
    }

    private static ChatMessage Row(long id, string? text, DateTimeOffset date, string? balloon = null, bool inChat = true) =>
        new(id, $"g{id}", text, "+12025550132", "iMessage", true, 0, true, true, false, date, null, null, 0, 0, false, 0, inChat) { BalloonBundleId = balloon };

    [Test]
    public void Choose_ForASendWhoseScriptRan_ShouldTakeOnlyItsTextOrAnUnreadableRowOfItsTime()
    {
        var at = new DateTimeOffset(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);
        var until = at.AddSeconds(30);
        var typed = Row(10, "Hey, it's Sam typing by hand", at.AddSeconds(5));
        var preview = Row(11, null, at.AddSeconds(6), "com.apple.messages.URLBalloonProvider");
        // Before: the oldest row of any text (the typed one), or the preview row of another send's link.
        Assert.That(DeliveryWatcher.Choose([typed, preview], "X text never sent", requireText: false, anyTextUntil: until), Is.Null);
        Assert.That(DeliveryWatcher.Choose([preview], "X text never sent", requireText: false, anyTextUntil: until), Is.Null);
        // Its own text, also rewritten or decoded doubled; a row whose text could not be read, while its script could still write it.
        Assert.That(DeliveryWatcher.Choose([typed, Row(12, "X text never sent!", at.AddSeconds(7))], "X text never sent", false, until)?.RowId, Is.EqualTo(12));
        Assert.That(DeliveryWatcher.Choose([typed, Row(16, "X text never sentX text never sent", at.AddSeconds(7))], "X text never sent", false, until)?.RowId, Is.EqualTo(16));
        // A longer text typed by hand that holds ours is not ours (review: "Thanks again, see you Friday" for "Thanks!").
        Assert.That(DeliveryWatcher.Choose([Row(17, "Thanks again, see you Friday", at.AddDays(1))], "Thanks!", false, until), Is.Null);
        Assert.That(DeliveryWatcher.Choose([Row(17, "Thanks again, see you Friday", at.AddDays(1))], "Thanks!", requireText: true), Is.Null);
        Assert.That(DeliveryWatcher.Choose([typed, Row(13, null, at.AddSeconds(8))], "X text never sent", false, until)?.RowId, Is.EqualTo(13));
        Assert.That(DeliveryWatcher.Choose([Row(14, null, until.AddSeconds(1))], "X text never sent", false, until), Is.Null, "an unreadable row written later");
        // Emoji only: compared as written, not by an empty key that every emoji shares.
        Assert.That(DeliveryWatcher.Choose([Row(18, "😂", at.AddSeconds(3)), Row(19, "👍", at.AddSeconds(4))], "👍", false, until)?.RowId, Is.EqualTo(19));
        Assert.That(DeliveryWatcher.Choose([Row(18, "😂", at.AddSeconds(3))], "👍", false, until), Is.Null);
        // A link sent alone: its text row, else its preview.
        Assert.That(DeliveryWatcher.Choose([Row(15, "https://example.com/deck", at)], "https://example.com/deck", false, until)?.RowId, Is.EqualTo(15));
    }
}
