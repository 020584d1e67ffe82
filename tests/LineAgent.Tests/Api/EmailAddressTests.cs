using LineAgent.Messages;

namespace LineAgent.Tests.Api;

/// <summary>Email addresses are read by MimeKit, then held to what a mail server and the DNS accept.</summary>
public sealed class EmailAddressTests
{
    [TestCase("Ana@Example.com", "ana@example.com")]
    [TestCase("first.last+tag@mail.example.co.uk", "first.last+tag@mail.example.co.uk")]
    [TestCase("x@a-b.example", "x@a-b.example")]
    public void AnAddressAServerTakes_ShouldBeRead(string input, string expected)
    {
        Assert.That(Recipients.TryNormalizeEmail(input, out var address, out var problem), Is.True, problem);
        Assert.That(address, Is.EqualTo(expected));
    }

    [TestCase("a@-example.com", "not a valid host name")]
    [TestCase("a@example-.com", "not a valid host name")]
    [TestCase("a@example..com", "not an email address")]
    [TestCase("a@[127.0.0.1]", "not an email address")]
    [TestCase("a@example.123", "not a valid host name")]
    [TestCase("nope", "not an email address")]
    public void AnAddressNoServerTakes_ShouldBeRefused(string input, string expected)
    {
        Assert.That(Recipients.TryNormalizeEmail(input, out _, out var problem), Is.False);
        Assert.That(problem, Does.Contain(expected));
    }

    [Test]
    public void AUserPartOver64Characters_OrADomainLabelOver63_ShouldBeRefused()
    {
        Assert.That(Recipients.TryNormalizeEmail(new string('a', 64) + "@example.com", out _, out _), Is.True);
        Assert.That(Recipients.TryNormalizeEmail(new string('a', 65) + "@example.com", out _, out var user), Is.False);
        Assert.That(user, Does.Contain("at most 64"));
        Assert.That(Recipients.TryNormalizeEmail("a@" + new string('b', 64) + ".com", out _, out _), Is.False);
    }
}
