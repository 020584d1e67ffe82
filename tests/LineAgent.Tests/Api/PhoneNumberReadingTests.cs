using LineAgent.Messages;

namespace LineAgent.Tests.Api;

/// <summary>Numbers read before are remembered (issue 10: libphonenumber was 2.3 % of the POST load's CPU); never across regions.</summary>
public sealed class PhoneNumberReadingTests
{
    [Test]
    public void ANationalNumber_ShouldBeReadInTheRegionItCameWith_EachTime()
    {
        for (var round = 0; round < 2; round++)
        {
            Assert.That(Recipients.TryNormalizePhone("(202) 555-0100", "US", out var us, out _), Is.True);
            Assert.That(us, Is.EqualTo("+12025550100"));
            Assert.That(Recipients.TryNormalizePhone("020 7946 0018", "GB", out var gb, out _), Is.True);
            Assert.That(gb, Is.EqualTo("+442079460018"));
            Assert.That(Recipients.TryNormalizePhone("020 7946 0018", "US", out _, out var problem), Is.False, "read in the US after the GB reading");
            Assert.That(problem, Does.Contain("not a valid phone number").Or.Contain("not a phone number"));
        }
    }

    [Test]
    public void MoreNumbersThanItRemembers_ShouldStillEachBeReadRight()
    {
        for (var i = 0; i < Recipients.RememberedNumbers + 10; i++)
        {
            var typed = $"+1 202 555 {i % 10_000:D4}";
            Assert.That(Recipients.TryNormalizePhone(typed, "US", out var e164, out var problem), Is.True, problem);
            Assert.That(e164, Is.EqualTo($"+1202555{i % 10_000:D4}"));
        }
        Assert.That(Recipients.TryNormalizePhone("+1 202 555 0000", "US", out var again, out _) ? again : null, Is.EqualTo("+12025550000"));
    }
}
