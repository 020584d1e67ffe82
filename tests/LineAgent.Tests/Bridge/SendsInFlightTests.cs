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

    private static ChatMessage Row(long rowId, string? handle, string? text, DateTimeOffset date, bool inChat = true) =>
        new(rowId, $"G-{rowId}", text, handle, "iMessage", IsFromMe: true, Error: 0, IsSent: true, IsFinished: true, IsDelivered: false,
            date, null, null, ItemType: 0, AssociatedMessageType: 0, WasDowngraded: false, ScheduleType: 0, InChat: inChat);

    [Test]
    public void ARow_ShouldBeKept_OnlyAboveTheBaselineOfAnotherSendToThatPerson_OrAnyoneForAGhostRow()
    {
        var other = new MessagesSendsInFlight.Send("msg_b", "+12025550904", Baseline: 100, StartedAt: T0, RecordedAt: null, ChangedTicks: 0);

        Assert.That(DeliveryWatcher.MayBeItsRow(other, Row(100, "+12025550904", "hi", T0.AddSeconds(5)), "+12025550904"), Is.False,
            "at or below its baseline: written before its script started");
        Assert.That(DeliveryWatcher.MayBeItsRow(other, Row(101, "+12025550904", "hi", T0.AddSeconds(-60)), "+12025550904"), Is.True,
            "above it, whatever its date");
        Assert.That(DeliveryWatcher.MayBeItsRow(other, Row(101, "+12025550999", "hi", T0), "+12025550999"), Is.False, "another person's send");
        Assert.That(DeliveryWatcher.MayBeItsRow(other, Row(101, null, null, T0, inChat: false), "+12025550999"), Is.True,
            "a ghost row names nobody: it may be any send's");

        var noBaseline = other with { Baseline = null };
        Assert.That(DeliveryWatcher.MayBeItsRow(noBaseline, Row(5, "+12025550904", "hi", T0.AddSeconds(-3)), "+12025550904"), Is.False,
            "without a baseline: rows dated before its script started (2 s of slack) are not its");
        Assert.That(DeliveryWatcher.MayBeItsRow(noBaseline, Row(5, "+12025550904", "hi", T0.AddSeconds(-1)), "+12025550904"), Is.True);
    }

    [Test]
    public void ASend_ShouldBeUnseen_UntilAPassThatBeganAfterItsOutcomeWasRecorded()
    {
        var sends = new MessagesSendsInFlight();
        sends.Started("msg_a", "+12025550904", 10, T0);
        var before = sends.Mark;
        Assert.That(sends.UnseenBy(before).Select(s => s.MessageId), Is.EqualTo(new[] { "msg_a" }), "its script runs");

        sends.Recorded("msg_a");
        Assert.That(sends.UnseenBy(before).Select(s => s.MessageId), Is.EqualTo(new[] { "msg_a" }),
            "a pass that read its sends before the outcome was written has not seen it");
        Assert.That(sends.UnseenBy(sends.Mark), Is.Empty, "a pass that began after it reads the outcome (and its baseline) from the database");
        sends.Recorded("msg_unknown");
        Assert.That(sends.UnseenBy(before).Select(s => s.MessageId), Is.EqualTo(new[] { "msg_a" }));
    }
}
