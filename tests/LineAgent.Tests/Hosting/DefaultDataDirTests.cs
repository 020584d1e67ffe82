using LineAgent.Hosting;

namespace LineAgent.Tests.Hosting;

/// <summary>Where the agent keeps its data when Agent:DataDir is not set.</summary>
[NonParallelizable] // changes HOME and XDG_DATA_HOME of this process for a moment
public sealed class DefaultDataDirTests
{
    private string? _home, _xdg;

    [SetUp]
    public void Keep() => (_home, _xdg) = (Environment.GetEnvironmentVariable("HOME"), Environment.GetEnvironmentVariable("XDG_DATA_HOME"));

    [TearDown]
    public void Restore()
    {
        Environment.SetEnvironmentVariable("HOME", _home);
        Environment.SetEnvironmentVariable("XDG_DATA_HOME", _xdg);
    }

    /// <summary>A HOME that does not exist yet came back empty from GetFolderPath, and the data dir became relative to the working directory (black-box probe).</summary>
    [TestCase(null)]
    [TestCase("relative/data", Description = "an XDG_DATA_HOME that is not absolute is ignored (XDG Base Directory spec)")]
    public void AHomeThatDoesNotExistYet_ShouldStillHoldTheDataDir(string? xdg)
    {
        var home = Path.Combine(Path.GetTempPath(), "lineagent-no-home-" + Guid.NewGuid().ToString("N"));
        Environment.SetEnvironmentVariable("HOME", home);
        Environment.SetEnvironmentVariable("XDG_DATA_HOME", xdg);

        var dir = AgentOptions.DefaultDataDir();

        Assert.That(dir, Is.EqualTo(OperatingSystem.IsMacOS()
            ? Path.Combine(home, "Library", "Application Support", "LineAgent")
            : Path.Combine(home, ".local", "share", "lineagent")));
        Assert.That(Directory.Exists(home), Is.False, "nothing is created by asking");
    }
}
