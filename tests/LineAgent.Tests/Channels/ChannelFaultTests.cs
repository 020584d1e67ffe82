using LineAgent.Channels;
using Moq;

namespace LineAgent.Tests.Channels;

/// <summary>What opens a channel's circuit (due messages then wait as queued) and what fails only that message.</summary>
public sealed class ChannelFaultTests
{
    [TestCase("twilio_auth_failed", true, Description = "a rotated Twilio token: every message would fail the same way")]
    [TestCase("twilio_endpoint_not_found", true, Description = "a Twilio:BaseUrl without the Messages API: every message would fail the same way")]
    [TestCase("twilio_rejected", false, Description = "possibly this message's text only")]
    [TestCase("smtp_auth_failed", true)]
    [TestCase("smtp_unsupported", true, Description = "STARTTLS or AUTH not offered: every message would fail the same way")]
    [TestCase("automation_denied", true)]
    [TestCase("messages_timeout", true)]
    [TestCase("invalid_recipient", false, Description = "this recipient only")]
    [TestCase("smtp_rejected", false)]
    [TestCase("suppressed", false)]
    public void AProvenFailure_ShouldCountAgainstTheChannel_OnlyWhenItIsTheChannels(string code, bool channelFault)
    {
        Assert.That(ChannelResilience.IsChannelFault(new SendOutcome.Failed(code, "x", ProvenNotSent: true)), Is.EqualTo(channelFault));
    }

    /// <summary>
    /// A settings fault (a refused login): the send that found it fails, the channel is held for BreakDuration, and each
    /// trial that meets it again waits, twice as long as the last, up to 5 minutes; a send that goes out ends it.
    /// </summary>
    [Test]
    public void ASettingsFault_ShouldFailTheFirstSend_ThenHoldTheChannel_DoublingUpToFiveMinutes_UntilASendGoesOut()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
        var resilience = new ChannelResilience(Microsoft.Extensions.Options.Options.Create(new ResilienceOptions { BreakDuration = TimeSpan.FromMinutes(1) }),
            time, Microsoft.Extensions.Logging.Abstractions.NullLogger<ChannelResilience>.Instance);
        var twilio = Mock.Of<IMessageChannel>(c => c.Name == "twilio");
        var refused = new SendOutcome.Failed("twilio_auth_failed", "Twilio 20003: Authenticate", ProvenNotSent: true);

        Assert.That(resilience.AfterAttempt(twilio, new SendOutcome.Failed("invalid_recipient", "x", ProvenNotSent: true)), Is.Null);
        Assert.That(resilience.OpenUntil("twilio"), Is.Null, "a recipient's failure holds nothing");
        Assert.That(resilience.AfterAttempt(twilio, refused), Is.Null, "the first send fails with the fault");
        Assert.That(resilience.OpenUntil("twilio"), Is.EqualTo(time.GetUtcNow().AddMinutes(1)));
        Assert.That(resilience.WhyHeld("twilio"), Does.Contain("twilio_auth_failed").And.Contain("Authenticate"));
        Assert.That(resilience.AfterAttempt(twilio, refused), Is.EqualTo(TimeSpan.FromMinutes(1)), "a send made at the same time waits out the same hold");

        var holds = new List<TimeSpan?>();
        for (var i = 0; i < 5; i++)
        {
            time.Advance(resilience.OpenUntil("twilio")!.Value - time.GetUtcNow());
            Assert.That(resilience.OpenUntil("twilio"), Is.Null, "the break is over: one trial goes");
            holds.Add(resilience.AfterAttempt(twilio, refused));
        }
        Assert.That(holds, Is.EqualTo(new TimeSpan?[] { TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5) }));
        Assert.That(resilience.OpenUntil("twilio"), Is.EqualTo(time.GetUtcNow().AddMinutes(5)));

        Assert.That(resilience.AfterAttempt(twilio, new SendOutcome.Accepted("SM1")), Is.Null);
        Assert.That(resilience.OpenUntil("twilio"), Is.Null, "a send that went out ends the hold");
        Assert.That(resilience.WhyHeld("twilio"), Does.Contain("circuit open"));
        Assert.That(resilience.AfterAttempt(twilio, refused), Is.Null, "a new fault fails its first send again");
    }

    [Test]
    public void AFailureThatMayHaveSent_ShouldCountAgainstTheChannel()
    {
        Assert.That(ChannelResilience.IsChannelFault(new SendOutcome.Failed("unconfirmed", "x", ProvenNotSent: false)), Is.True);
    }
}
