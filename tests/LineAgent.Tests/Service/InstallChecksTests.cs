using LineAgent.Cli;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Configuration;

namespace LineAgent.Tests.Service;

/// <summary>`lineagent doctor`'s Mac service checks, with launchctl, sfltool, codesign and stat as stand-ins.</summary>
public sealed class InstallChecksTests
{
    private const string Label = "com.lineagent.agent";

    /// <summary>A home directory with the LaunchAgent plist rendered from the real template, and the answers of the Mac tools.</summary>
    private sealed class Mac : IDisposable
    {
        private readonly TempDir _dir = new();

        public Mac()
        {
            Home = Directory.CreateDirectory(Path.Combine(_dir.Path, "Users", "sam")).FullName;
            Prefix = Path.Combine(Home, "Library", "Application Support", "LineAgent");
            Answers["/bin/launchctl print gui/501"] = (0, "gui/501 = {\n\ttype = login\n}");
            Answers[$"/bin/launchctl print gui/501/{Label}"] = (0, $"gui/501/{Label} = {{\n\tactive count = 1\n\tstate = running\n\tpid = 4242\n\tlast exit code = (never exited)\n}}");
            Answers["/usr/bin/sfltool dumpbtm"] = (0, Dump("enabled, allowed, visible, notified"));
            Answers["/usr/bin/stat -f%Su /dev/console"] = (0, "sam\n");
            Answers["/usr/bin/codesign -dr - " + Binary] = (0, $"Executable={Binary}\ndesignated => identifier \"com.lineagent.agent\" and certificate leaf = H\"8d1e\"\n");
        }

        public string Home { get; }
        public string Prefix { get; set; }
        public string Binary => Path.Combine(Prefix, "bin", "lineagent");
        public string PlistPath => Path.Combine(Home, "Library", "LaunchAgents", Label + ".plist");
        public Dictionary<string, (int, string)> Answers { get; } = new();
        public List<string> Ran { get; } = [];

        public void Install(string? dataDir = null, bool withPrefixKey = true)
        {
            Directory.CreateDirectory(Path.Combine(Prefix, "bin"));
            File.WriteAllText(Binary, "");
            var text = File.ReadAllText(Programs.RepoFile("launchd/com.lineagent.agent.plist.template"))
                .Replace("@@LABEL@@", Label).Replace("@@PROGRAM@@", Binary).Replace("@@DATA_DIR@@", dataDir ?? Prefix)
                .Replace("@@LOG_DIR@@", Path.Combine(Home, "Library", "Logs", "LineAgent")).Replace("@@HOME@@", Home).Replace("@@PREFIX@@", Prefix);
            if (!withPrefixKey)
                text = text.Replace("<key>LINEAGENT__Agent__InstallPrefix</key>", "<key>UNUSED</key>");
            Directory.CreateDirectory(Path.GetDirectoryName(PlistPath)!);
            File.WriteAllText(PlistPath, text);
        }

        public InstallProbe Probe(bool isMac = true) => new()
        {
            IsMacOS = isMac,
            Home = Home,
            UserName = "sam",
            Uid = "501",
            Run = (file, args) =>
            {
                var command = string.Join(' ', new[] { file }.Concat(args));
                Ran.Add(command);
                return Answers.TryGetValue(command, out var answer) ? answer : (-1, $"{file}: no stand-in for '{command}'");
            },
        };

        public Dictionary<string, Check> Run(string? dataDir = null, Dictionary<string, string?>? config = null, bool isMac = true)
        {
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(config ?? []).Build();
            var checks = InstallChecks.Run(configuration, dataDir ?? Prefix, Probe(isMac)).ToList();
            foreach (var c in checks)
                TestContext.Out.WriteLine($"[{c.State,4}] {c.Name}: {c.Detail}{(c.Fix is null ? "" : $"\n       fix: {c.Fix}")}");
            return checks.ToDictionary(c => c.Name);
        }

        public void Dispose() => _dir.Dispose();
    }

    /// <summary>The shape of `sfltool dumpbtm` on macOS 13+: another UID's section first, then the user's items.</summary>
    private static string Dump(string disposition) => $"""
        ========================
         Records for UID -2 : FFFFEEEE-DDDD-CCCC-BBBB-AAAAFFFFFFFE
        ========================

         Items:

         #1:
                         UUID: EEE834D9-2346-423E-A7F3-74A1DF32C045
                         Name: lineagent
                  Disposition: [disabled, allowed, not notified] (0x2)
                   Identifier: 16.{Label}
                          URL: file:///Users/other/Library/LaunchAgents/{Label}.plist
          Embedded Item Identifiers:
            #1: 16.com.docker.vmnetd

        ========================
         Records for UID 501 : 11112222-3333-4444-5555-666677778888
        ========================

         Items:

         #1:
                         UUID: 9A9A9A9A-7777-8888-9999-000011112222
                         Name: Amphetamine
                         Type: app (0x10002)
                  Disposition: [disabled, allowed, visible, notified] (0xa)
                   Identifier: com.if.Amphetamine
                          URL: /Applications/Amphetamine.app

         #2:
                         UUID: CFCA1AB8-A002-498C-BDD0-24C6E2802585
                         Name: lineagent
               Developer Name: (null)
                         Type: legacy agent (0x10010)
                  Disposition: [{disposition}] (0xb)
                   Identifier: 16.{Label}
                          URL: file:///Users/sam/Library/LaunchAgents/{Label}.plist
              Executable Path: /Users/sam/Library/Application Support/LineAgent/bin/lineagent
                   Generation: 1
        """;

    [Test]
    public void OnAnotherOs_ShouldSkipWithOneCheck()
    {
        using var mac = new Mac();
        var checks = mac.Run(isMac: false);
        Assert.That(checks.Keys, Is.EqualTo(new[] { "LaunchAgent install" }));
        Assert.That(checks["LaunchAgent install"].State, Is.EqualTo(Check.Skip));
        Assert.That(checks["LaunchAgent install"].Detail, Does.Contain("not macOS"));
        Assert.That(mac.Ran, Is.Empty, "no Mac tool is called elsewhere");
    }

    [Test]
    public void AWellInstalledAgent_ShouldPassEveryCheck()
    {
        using var mac = new Mac();
        mac.Install();
        var checks = mac.Run();

        Assert.That(checks.Keys, Is.EqualTo(new[]
        {
            "Installed binary", "LaunchAgent plist", "LaunchAgent loaded", "Allow in the Background", "GUI login session", "Code signature",
        }));
        Assert.That(checks.Values.Select(c => c.State), Is.All.EqualTo(Check.Ok));
        Assert.That(checks["Installed binary"].Detail, Does.Contain(mac.Binary).And.Contain("prefix from " + mac.PlistPath));
        Assert.That(checks["LaunchAgent loaded"].Detail, Does.Contain("running, pid 4242"));
        Assert.That(checks["Allow in the Background"].Detail, Does.Contain("[enabled, allowed, visible, notified]"),
            "the user's own record decides, not another UID's disabled one");
        Assert.That(checks["Code signature"].Detail, Does.Contain("certificate leaf"));
        Assert.That(mac.Ran, Does.Contain($"/bin/launchctl print gui/501/{Label}").And.Contain("/usr/bin/codesign -dr - " + mac.Binary));
    }

    [Test]
    public void SwitchedOffInLoginItems_ShouldFail_WithWhereToSwitchItOn()
    {
        using var mac = new Mac();
        mac.Install();
        mac.Answers["/usr/bin/sfltool dumpbtm"] = (0, Dump("disabled, allowed, visible, notified"));
        var check = mac.Run()["Allow in the Background"];
        Assert.That(check.State, Is.EqualTo(Check.Fail));
        Assert.That(check.Failed, Is.True, "doctor exits 1: launchd will not start it");
        Assert.That(check.Detail, Does.Contain("Login Items > Allow in the Background"));
        Assert.That(check.Fix, Does.Contain("launchctl bootstrap gui/501 "));
    }

    [Test]
    public void Sfltool_ShouldBeSkippedWithTheReason_WhenItRefuses()
    {
        using var mac = new Mac();
        mac.Install();
        mac.Answers["/usr/bin/sfltool dumpbtm"] = (1, "sfltool[915:7291] authorization failed\n");
        var check = mac.Run()["Allow in the Background"];
        Assert.That(check.State, Is.EqualTo(Check.Skip));
        Assert.That(check.Failed, Is.False);
        Assert.That(check.Detail, Does.Contain("authorization failed").And.Contain("Login Items"));

        mac.Answers.Remove("/usr/bin/sfltool dumpbtm");   // macOS 12: no sfltool dumpbtm
        Assert.That(mac.Run()["Allow in the Background"].State, Is.EqualTo(Check.Skip));
    }

    [Test]
    public void NoGuiSession_ShouldWarnThatALaunchAgentRunsOnlyAfterLogin()
    {
        using var mac = new Mac();
        mac.Install();
        mac.Answers["/bin/launchctl print gui/501"] = (113, "Bad request.\nCould not find domain for port identifier: gui/501\n");
        mac.Answers[$"/bin/launchctl print gui/501/{Label}"] = (113, "Could not find service \"com.lineagent.agent\" in domain for port\n");
        var checks = mac.Run();

        Assert.That(checks["GUI login session"].State, Is.EqualTo(Check.Warn));
        Assert.That(checks["GUI login session"].Detail, Does.Contain("no GUI login session"));
        Assert.That(checks["GUI login session"].Fix, Does.Contain("automatic login").And.Contain("After login, and sleep"));
        Assert.That(checks["LaunchAgent loaded"].State, Is.EqualTo(Check.Warn), "not loaded is expected before login");
    }

    [Test]
    public void NotLoadedInALiveSession_ShouldFail_WithEnableAndBootstrap()
    {
        using var mac = new Mac();
        mac.Install();
        mac.Answers[$"/bin/launchctl print gui/501/{Label}"] = (113, "Could not find service\n");
        mac.Answers["/usr/bin/stat -f%Su /dev/console"] = (0, "root\n");
        var checks = mac.Run();

        Assert.That(checks["LaunchAgent loaded"].State, Is.EqualTo(Check.Fail));
        Assert.That(checks["LaunchAgent loaded"].Fix, Does.Contain($"launchctl enable gui/501/{Label} && launchctl bootstrap gui/501 \"{mac.PlistPath}\""));
        Assert.That(checks["GUI login session"].State, Is.EqualTo(Check.Warn));
        Assert.That(checks["GUI login session"].Detail, Does.Contain("the login window"));
    }

    [Test]
    public void AdHocSignature_ShouldWarnThatGrantsAreLostAtEachChangedInstall()
    {
        using var mac = new Mac();
        mac.Install();
        mac.Answers["/usr/bin/codesign -dr - " + mac.Binary] = (0, $"Executable={mac.Binary}\ndesignated => cdhash H\"4c2bb0a5e1c1d9b7\"\n");
        var check = mac.Run()["Code signature"];
        Assert.That(check.State, Is.EqualTo(Check.Warn));
        Assert.That(check.Detail, Does.Contain("ad-hoc").And.Contain("cdhash"));
        Assert.That(check.Fix, Does.Contain("install.sh --sign"));

        mac.Answers["/usr/bin/codesign -dr - " + mac.Binary] = (1, $"{mac.Binary}: code object is not signed at all\n");
        Assert.That(mac.Run()["Code signature"].Detail, Does.Contain("not signed at all"));
    }

    [Test]
    public void Prefix_ShouldComeFromConfiguration_ThenThePlist_ThenTheDefault()
    {
        using var mac = new Mac();
        mac.Prefix = Path.Combine(mac.Home, "opt", "lineagent");
        mac.Install();
        Assert.That(mac.Run()["Installed binary"].State, Is.EqualTo(Check.Ok), "LINEAGENT__Agent__InstallPrefix in the plist");

        mac.Install(withPrefixKey: false);
        var fromProgram = mac.Run()["Installed binary"];
        Assert.That(fromProgram.State, Is.EqualTo(Check.Ok), "else the directory above ProgramArguments[0]'s bin/");
        Assert.That(fromProgram.Detail, Does.Contain(mac.Binary));

        var elsewhere = Path.Combine(mac.Home, "elsewhere");
        var configured = mac.Run(config: new() { ["Agent:InstallPrefix"] = elsewhere })["Installed binary"];
        Assert.That(configured.State, Is.EqualTo(Check.Warn));
        Assert.That(configured.Detail, Does.Contain(Path.Combine(elsewhere, "bin", "lineagent")).And.Contain("Agent:InstallPrefix"));

        File.Delete(mac.PlistPath);
        var checks = mac.Run();
        Assert.That(checks["Installed binary"].Detail, Does.Contain(Path.Combine(mac.Home, "Library", "Application Support", "LineAgent", "bin", "lineagent")));
        Assert.That(checks["LaunchAgent plist"].State, Is.EqualTo(Check.Warn));
        Assert.That(checks["Allow in the Background"].State, Is.EqualTo(Check.Skip));
    }

    [Test]
    public void AnotherLabel_AndAnotherDataDir_ShouldBeFollowed()
    {
        using var mac = new Mac();
        mac.Install(dataDir: "/Volumes/Data/lineagent");
        var checks = mac.Run(dataDir: mac.Prefix);
        Assert.That(checks["LaunchAgent data dir"].State, Is.EqualTo(Check.Warn));
        Assert.That(checks["LaunchAgent data dir"].Fix, Does.Contain("--data-dir \"/Volumes/Data/lineagent\""));
        Assert.That(mac.Run(dataDir: "/Volumes/Data/lineagent/").ContainsKey("LaunchAgent data dir"), Is.False);

        var other = mac.Run(config: new() { ["Agent:LaunchdLabel"] = "com.example.line2" });
        Assert.That(other["LaunchAgent plist"].Detail, Does.Contain("com.example.line2.plist does not exist"));
        Assert.That(mac.Ran, Does.Contain("/bin/launchctl print gui/501/com.example.line2"));
    }

    [Test]
    public void BackgroundTasks_ShouldReadItemsOfOneUser_AndTellDisabledFromEnabled()
    {
        var items = BackgroundTasks.Parse(Dump("disabled, allowed, visible, notified"), "501");
        Assert.That(items.Select(i => i.Fields["Name"]), Is.EqualTo(new[] { "Amphetamine", "lineagent" }));
        var agent = items[1];
        Assert.That(agent.Matches(Label, "/nowhere", "/nowhere.plist"), Is.True, "identifier 16.<label>");
        Assert.That(agent.Enabled, Is.False);
        Assert.That(agent.DispositionFlags, Is.EqualTo(new[] { "disabled", "allowed", "visible", "notified" }));
        Assert.That(BackgroundTasks.Parse(Dump("enabled, allowed, not notified"), "501")[1].Enabled, Is.True);
        Assert.That(BackgroundTasks.Parse(Dump("enabled"), "-2"), Has.Count.EqualTo(1), "a nested list line (\"    #1: 16.com...\") is not a new item");
        Assert.That(BackgroundTasks.Parse("", "501"), Is.Empty);
        Assert.That(BackgroundTasks.Parse("sfltool: command not found", "501"), Is.Empty);
    }
}
