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
