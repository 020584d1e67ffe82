using LineAgent.Channels;

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

    [Test]
    public void AFailureThatMayHaveSent_ShouldCountAgainstTheChannel()
    {
        Assert.That(ChannelResilience.IsChannelFault(new SendOutcome.Failed("unconfirmed", "x", ProvenNotSent: false)), Is.True);
    }
}
