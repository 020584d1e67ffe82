using LineAgent.Channels.Messages;
using LineAgent.Messages;

namespace LineAgent.Tests.Bridge;

/// <summary>The reason a line gives when chat.db cannot confirm sends: advice that fits the state, not always "grant a permission".</summary>
public sealed class MessagesHealthReportTests
{
    private static MessagesHealthReport Report(string fullDiskAccess) =>
        new("reachable", "granted", "signed_in", "available", fullDiskAccess, null, AgentFactoryEpoch);

    private static readonly DateTimeOffset AgentFactoryEpoch = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    [Test]
    public void Problem_ShouldBeNone_WhenChatDbIsReadable() =>
        Assert.That(Report("granted").Problem(MessageType.IMessage), Is.Null);

    [TestCase("denied", "Give the agent Full Disk Access")]
    [TestCase("missing_db", "Open Messages once and sign in")]
    [TestCase("damaged_db", "the agent's own database is not affected")]
    [TestCase("unknown", "locked or damaged")]
    public void Problem_ShouldGiveTheAdviceThatFitsTheState(string state, string advice)
    {
        foreach (var type in new[] { MessageType.IMessage, MessageType.Sms })
        {
            var problem = Report(state).Problem(type);
            Assert.That(problem, Does.Contain(advice).And.Contain("sends cannot be confirmed"), type);
            if (state != "denied")
                Assert.That(problem, Does.Not.Contain("Full Disk Access"), "a busy, locked or missing chat.db is not a permission problem");
        }
    }

    /// <summary>What `auto` skips a type for: a state someone has to fix, not one that passes (a send launches Messages).</summary>
    [TestCase("reachable", "granted", "signed_out", "available", "granted", "No signed-in iMessage account", null)]
    [TestCase("reachable", "granted", "connecting", "available", "granted", null, null)]
    [TestCase("reachable", "granted", "missing", "missing", "granted", "No signed-in iMessage account", "No SMS account")]
    [TestCase("reachable", "denied", "unknown", "unknown", "granted", "Automation", "Automation")]
    [TestCase("not_running", "unknown", "unknown", "unknown", "granted", null, null)]
    [TestCase("timed_out", "unknown", "unknown", "unknown", "granted", null, null)]
    [TestCase("not_running", "unknown", "unknown", "unknown", "denied", "Full Disk Access", "Full Disk Access")]
    [TestCase("reachable", "granted", "signed_in", "available", "missing_db", "Open Messages once", "Open Messages once")]
    [TestCase("reachable", "granted", "signed_in", "available", "damaged_db", "chat.db is damaged", "chat.db is damaged")]
    [TestCase("reachable", "granted", "signed_in", "available", "unknown", null, null)]
    public void LastingProblem_ShouldNameOnlyWhatSomeoneMustFix(string messages, string automation, string imessage, string sms, string fda,
        string? forIMessage, string? forSms)
    {
        var report = new MessagesHealthReport(messages, automation, imessage, sms, fda, null, AgentFactoryEpoch);
        foreach (var (type, expected) in new[] { (MessageType.IMessage, forIMessage), (MessageType.Sms, forSms) })
            Assert.That(report.LastingProblem(type), expected is null ? Is.Null : Does.Contain(expected), type);
    }

    [Test]
    public void Problem_ShouldPointAtTheConsentPrompt_WhenMessagesTimesOut()
    {
        var first = new MessagesHealthReport("timed_out", "unknown", "unknown", "unknown", "granted", "status.applescript timed out after 30 s", AgentFactoryEpoch);
        Assert.That(first.Problem(MessageType.IMessage), Does.Contain("Automation").And.Contain("status.applescript timed out").And.Contain("hung"));
    }
}
