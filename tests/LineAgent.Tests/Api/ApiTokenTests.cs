using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Options;

namespace LineAgent.Tests.Api;

/// <summary>The token file in the data dir: made once (0600), kept, and an empty one is not a reason to stop.</summary>
public sealed class ApiTokenTests
{
    private static ApiToken Load(TempDir dir) => new(Options.Create(new ApiOptions()), new DataDirectory(dir.Path));

    [Test]
    public void AMissingTokenFile_ShouldBeMadeOnce_AndKept()
    {
        using var dir = new TempDir();
        var first = Load(dir).Value;
        Assert.That(first, Does.StartWith("la_"));
        Assert.That(Load(dir).Value, Is.EqualTo(first));
        if (!OperatingSystem.IsWindows())
            Assert.That(File.GetUnixFileMode(new DataDirectory(dir.Path).TokenFile), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [TestCase("la_0123456789abcdef", true)]
    [TestCase("la_0123456789abcdeF", false)]
    [TestCase("la_0123456789abcde", false)]
    [TestCase("la_0123456789abcdef0", false)]
    [TestCase("la_0123456789abcdef\0", false)]
    [TestCase("", false)]
    [TestCase(null, false)]
    [TestCase("é", false)]
    public void Matches_ShouldAcceptOnlyTheTokenItself(string? candidate, bool expected)
    {
        // Compared byte by byte in constant time (no hash): a prefix, an extension or one changed byte is not the token.
        using var dir = new TempDir();
        var token = new ApiToken(Options.Create(new ApiOptions { Token = "la_0123456789abcdef" }), new DataDirectory(dir.Path));
        Assert.That(token.Matches(candidate), Is.EqualTo(expected));
    }

    [Test]
    public void Matches_ShouldCompareTokensOfAnyLength()
    {
        using var dir = new TempDir();
        var value = "t€" + new string('x', 300);
        var token = new ApiToken(Options.Create(new ApiOptions { Token = value }), new DataDirectory(dir.Path));
        Assert.That(token.Matches(value), Is.True);
        Assert.That(token.Matches(value[..^1] + "y"), Is.False);
        Assert.That(token.Matches(value + value), Is.False);
    }

    [TestCase("")]
    [TestCase("  \n")]
    public void AnEmptyTokenFile_ShouldBeReplacedByANewToken(string content)
    {
        // Before: the new token's rename refused the existing (empty) file, and the agent stopped at every start.
        using var dir = new TempDir();
        var file = new DataDirectory(dir.Path).TokenFile;
        File.WriteAllText(file, content);
        var token = Load(dir).Value;
        Assert.That(token, Does.StartWith("la_"));
        Assert.That(File.ReadAllText(file).Trim(), Is.EqualTo(token));
    }
}
