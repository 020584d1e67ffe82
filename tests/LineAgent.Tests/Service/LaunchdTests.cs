using Microsoft.AspNetCore.Builder;
using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Tests.Support;
using Microsoft.Extensions.Options;

namespace LineAgent.Tests.Service;

/// <summary>The Mac service pieces in launchd/: plist, install scripts, menu-bar plugin.</summary>
public sealed class LaunchdTests
{
    private static string Launchd(string file) => Programs.RepoFile(Path.Combine("launchd", file));

    [Test]
    public async Task PlistTemplate_ShouldBeAValidLaunchAgent_WithTheRightKeysAndTypes()
    {
        var text = await File.ReadAllTextAsync(Launchd("com.lineagent.agent.plist.template"));
        foreach (var (placeholder, value) in new Dictionary<string, string>
                 {
                     ["@@LABEL@@"] = "com.lineagent.agent", ["@@PROGRAM@@"] = "/Users/sam/Library/Application Support/LineAgent/bin/lineagent",
                     ["@@DATA_DIR@@"] = "/Users/sam/Library/Application Support/LineAgent", ["@@LOG_DIR@@"] = "/Users/sam/Library/Logs/LineAgent",
                     ["@@HOME@@"] = "/Users/sam", ["@@PREFIX@@"] = "/Users/sam/Library/Application Support/LineAgent",
                 })
            text = text.Replace(placeholder, value);
        Assert.That(text, Does.Not.Contain("@@"), "unreplaced placeholder");
        var keys = Plist.ParseDict(text);
        (string Type, JsonNode? Value) Key(string name) => (keys[name].Type, keys[name].Json);

        Assert.That(Key("Label"), Is.EqualTo(("str", (JsonNode?)"com.lineagent.agent")).Using<(string, JsonNode?)>((a, b) => a.Item1 == b.Item1 && a.Item2!.ToJsonString() == b.Item2!.ToJsonString()));
        Assert.That(Key("ProgramArguments").Type, Is.EqualTo("list"));
        Assert.That(Key("ProgramArguments").Value!.AsArray().Select(a => a!.GetValue<string>()).Last(), Is.EqualTo("run"));
        Assert.That(Key("RunAtLoad"), Is.EqualTo(("bool", (JsonNode?)true)).Using<(string, JsonNode?)>((a, b) => a.Item1 == b.Item1 && a.Item2!.ToJsonString() == b.Item2!.ToJsonString()));
        Assert.That(Key("KeepAlive").Type, Is.EqualTo("dict"));
        Assert.That(Key("KeepAlive").Value!["SuccessfulExit"]!.GetValue<bool>(), Is.False, "restart on crash, not on clean exit");
        Assert.That(Key("ThrottleInterval").Type, Is.EqualTo("int"));
        Assert.That(Key("ExitTimeOut").Type, Is.EqualTo("int"));
        Assert.That(Key("ExitTimeOut").Value!.GetValue<int>(), Is.GreaterThan((int)new AgentOptions().ShutdownTimeout.TotalSeconds),
            "launchd must wait longer than the agent's own shutdown");
        Assert.That(Key("ProcessType").Value!.GetValue<string>(), Is.EqualTo("Interactive"));
        Assert.That(Key("StandardOutPath").Value!.GetValue<string>(), Does.StartWith("/Users/sam/Library/Logs/LineAgent/"));
        Assert.That(Key("StandardErrorPath").Value!.GetValue<string>(), Does.StartWith("/Users/sam/Library/Logs/LineAgent/"));
        var env = Key("EnvironmentVariables").Value!.AsObject();
        Assert.That(env["LINEAGENT__Agent__DataDir"]!.GetValue<string>(), Is.EqualTo("/Users/sam/Library/Application Support/LineAgent"));
        Assert.That(env["LINEAGENT__Agent__InstallPrefix"]!.GetValue<string>(), Is.EqualTo("/Users/sam/Library/Application Support/LineAgent"),
            "doctor and the menu-bar plugin find the installed binary through it");
        Assert.That(TimeSpan.Parse(env["LINEAGENT__Agent__ShutdownTimeout"]!.GetValue<string>()).TotalSeconds,
            Is.LessThan(Key("ExitTimeOut").Value!.GetValue<int>()));
    }

    [Test]
    public async Task Scripts_ShouldPassShellcheck()
    {
        if (!File.Exists("/usr/bin/shellcheck"))
            Assert.Ignore("shellcheck is not installed (.ci/run installs it)");
        var result = await Programs.RunAsync("/usr/bin/shellcheck",
            ["-x", Launchd("install.sh"), Launchd("uninstall.sh"), Launchd("common.sh"), Launchd("menubar/lineagent.30s.sh"), Programs.RepoFile(".ci/run")]);
        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);
    }

    [Test]
    public async Task InstallDryRun_ShouldPrintTheStepsOnLinux_AndChangeNothing()
    {
        using var home = new TempDir();
        var env = new Dictionary<string, string?> { ["HOME"] = home.Path };
        var result = await Programs.RunAsync("/bin/bash", [Launchd("install.sh"), "--dry-run", "--rid", "osx-arm64"], env);

        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("+ dotnet publish").And.Contain("-r osx-arm64 --self-contained true"));
        Assert.That(result.Stdout, Does.Contain("Library/LaunchAgents/com.lineagent.agent.plist"));
        Assert.That(result.Stdout, Does.Contain("+ launchctl bootstrap gui/"));
        Assert.That(result.Stdout, Does.Contain("== compare with the installed build").And.Contain("keep ").And.Contain("untouched"));
        Assert.That(result.Stdout, Does.Not.Contain("codesign"), "without --sign the ad-hoc signature stays");
        Assert.That(Directory.EnumerateFileSystemEntries(home.Path), Is.Empty, "a dry run writes nothing");

        var signed = await Programs.RunAsync("/bin/bash", [Launchd("install.sh"), "--dry-run", "--rid", "osx-x64", "--sign", "LineAgent Signing"], env);
        Assert.That(signed.ExitCode, Is.Zero, signed.Stderr);
        Assert.That(signed.Stdout, Does.Contain(@"+ codesign --force --sign LineAgent\ Signing --identifier com.lineagent.agent "));
        Assert.That(Directory.EnumerateFileSystemEntries(home.Path), Is.Empty, "a dry run writes nothing");

        var real = await Programs.RunAsync("/bin/bash", [Launchd("install.sh")], env);
        Assert.That(real.ExitCode, Is.EqualTo(1));
        Assert.That(real.Stderr + real.Stdout, Does.Contain("macOS"));

        var uninstall = await Programs.RunAsync("/bin/bash", [Launchd("uninstall.sh"), "--dry-run", "--purge"], env);
        Assert.That(uninstall.ExitCode, Is.Zero, uninstall.Stderr);
        Assert.That(uninstall.Stdout, Does.Contain("launchctl bootout"));
    }

    /// <summary>A Mac made of stand-ins: uname says Darwin, dotnet "publishes" a directory the test controls,
    /// launchctl keeps a loaded flag, curl answers /healthz while loaded, codesign appends a timed signature.</summary>
    private sealed class FakeMac
    {
        public FakeMac(string root)
        {
            Home = Directory.CreateDirectory(Path.Combine(root, "home")).FullName;
            Build = Directory.CreateDirectory(Path.Combine(root, "build")).FullName;
            State = Directory.CreateDirectory(Path.Combine(root, "state")).FullName;
            Bin = new FakeBin(root)
                .Add("uname", "case \"$1\" in -m) echo arm64 ;; *) echo Darwin ;; esac")
                .Add("id", "if [ \"$1\" = -u ]; then echo 501; else exec /usr/bin/id \"$@\"; fi")
                .Add("dotnet", "log_call \"$@\"\nout=\"\"\nwhile [ \"$#\" -gt 0 ]; do [ \"$1\" = -o ] && out=$2; shift; done\n" +
                               $"mkdir -p \"$out\" && cp -R '{Build}/.' \"$out/\"")
                .Add("launchctl", "log_call \"$@\"\ncase \"$1\" in\n" +
                                  $"  print) [ -e '{State}/loaded' ] || {{ echo 'Could not find service' >&2; exit 113; }} ;;\n" +
                                  $"  bootout) rm -f '{State}/loaded' ;;\n  bootstrap) touch '{State}/loaded' ;;\nesac")
                .Add("curl", $"[ -e '{State}/loaded' ] || exit 7\necho ok")
                .Add("codesign", "log_call \"$@\"\nif [ \"$1\" = --force ]; then\n  for f; do :; done\n" +
                                 "  printf 'signature by %s at %s\\n' \"$3\" \"$(date +%s%N)\" >>\"$f\"\nelse\n" +
                                 "  echo 'designated => identifier \"com.lineagent.agent\" and certificate leaf = H\"0123\"'\nfi")
                .Add("shasum", "[ \"$1\" = -a ] && shift 2\nexec sha256sum \"$@\"");
        }

        public string Home { get; }
        public string Build { get; }
        public string State { get; }
        public FakeBin Bin { get; }
        public string Prefix => Path.Combine(Home, "Library", "Application Support", "LineAgent");
        public string Installed(string file) => Path.Combine(Prefix, "bin", file);

        public void Publish(string apphost, string dll)
        {
            File.WriteAllText(Path.Combine(Build, "lineagent"), apphost);
            File.SetUnixFileMode(Path.Combine(Build, "lineagent"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.WriteAllText(Path.Combine(Build, "lineagent.dll"), dll);
        }

        public async Task<Programs.Result> InstallAsync(string? signEnv = null, params string[] args)
        {
            Bin.ClearCalls();
            var env = new Dictionary<string, string?> { ["HOME"] = Home, ["PATH"] = Bin.PathVariable, ["LINEAGENT_SIGN_IDENTITY"] = signEnv };
            var result = await Programs.RunAsync("/bin/bash", [Launchd("install.sh"), .. args], env);
            TestContext.Out.WriteLine(result.Stdout + result.Stderr);
            return result;
        }

        public static async Task<string> InodeAsync(string file) => (await Programs.RunAsync("stat", ["-c", "%i", file])).Stdout.Trim();

        public async Task<Programs.Result> UninstallAsync(params string[] args)
        {
            Bin.ClearCalls();
            var env = new Dictionary<string, string?> { ["HOME"] = Home, ["PATH"] = Bin.PathVariable };
            var result = await Programs.RunAsync("/bin/bash", [Launchd("uninstall.sh"), .. args], env);
            TestContext.Out.WriteLine(result.Stdout + result.Stderr);
            return result;
        }
    }

    [Test]
    public async Task UninstallPurge_WithAnAgentStartedByHandOnTheDataDir_ShouldDeleteNothing()
    {
        // `lineagent run` started in a terminal holds agent.lock; launchd knows nothing of it. lsof (macOS: /usr/sbin/lsof)
        // names the processes that have the file open.
        using var dir = new TempDir();
        var mac = new FakeMac(dir.Path);
        mac.Bin.Add("lsof", $"log_call \"$@\"\n[ -e '{mac.State}/hand-started' ] && echo 4242\nexit 0");
        mac.Publish("apphost v1", "dll v1");
        Assert.That((await mac.InstallAsync()).ExitCode, Is.Zero);
        File.WriteAllText(Path.Combine(mac.Prefix, "lineagent.db"), "the messages");
        File.WriteAllText(Path.Combine(mac.Prefix, "agent.lock"), "");
        File.WriteAllText(Path.Combine(mac.State, "hand-started"), "");

        var refused = await mac.UninstallAsync("--purge");
        Assert.That(refused.ExitCode, Is.Not.Zero);
        Assert.That(refused.Stderr, Does.Contain("not started by launchd (pid 4242)").And.Contain("kill -TERM 4242").And.Contain("still installed; nothing was deleted"));
        Assert.That(File.Exists(Path.Combine(mac.Prefix, "lineagent.db")), Is.True);
        Assert.That(mac.Bin.Calls, Has.Some.StartsWith($"lsof -t -- {Path.Combine(mac.Prefix, "agent.lock")}"));

        // Without --purge it removes the LaunchAgent and says the other agent still runs.
        var kept = await mac.UninstallAsync();
        Assert.That(kept.ExitCode, Is.Zero, kept.Stderr);
        Assert.That(kept.Stdout, Does.Contain("still running on").And.Contain("4242"));
        Assert.That(File.Exists(Path.Combine(mac.Prefix, "lineagent.db")), Is.True);

        File.Delete(Path.Combine(mac.State, "hand-started"));
        var purged = await mac.UninstallAsync("--purge");
        Assert.That(purged.ExitCode, Is.Zero, purged.Stderr);
        Assert.That(Directory.Exists(mac.Prefix), Is.False);
    }

    /// <summary>
    /// --purge compared the data dir with the home directory as text: "$HOME//" and "//home" passed, and `rm -rf` took
    /// the whole home (probe; a home with a bin/ folder "looked like" LineAgent's). An empty --prefix= meant the current
    /// directory. Now paths are tidied and resolved before the check, and --purge deletes LineAgent's files only.
    /// </summary>
    [Test]
    public async Task UninstallPurge_ShouldNeverDeleteTheHome_HoweverItIsWritten_AndOnlyLineAgentsFilesElsewhere()
    {
        using var dir = new TempDir();
        var mac = new FakeMac(dir.Path);
        Directory.CreateDirectory(Path.Combine(mac.Home, "bin"));
        Directory.CreateDirectory(Path.Combine(mac.Home, "Documents"));
        var thesis = Path.Combine(mac.Home, "Documents", "thesis.txt");
        File.WriteAllText(thesis, "years of work");
        File.WriteAllText(Path.Combine(mac.Home, "lineagent.db"), "a database someone put here");
        var link = Path.Combine(dir.Path, "link-to-home");
        File.CreateSymbolicLink(link, mac.Home);

        foreach (var args in new[]
                 {
                     new[] { "--purge", "--data-dir", mac.Home + "//" },
                     ["--purge", "--data-dir", "/" + mac.Home],
                     ["--purge", "--data-dir", mac.Home + "/Documents/.."],
                     ["--purge", "--data-dir", link],
                     ["--purge", "--data-dir", Path.GetDirectoryName(mac.Home)!],
                     ["--purge", "--data-dir", mac.Home + "/Library/../Library/Application Support/"],
                     ["--purge", "--prefix="],
                     ["--purge", "--data-dir="],
                 })
        {
            var refused = await mac.UninstallAsync(args);
            Assert.That(refused.ExitCode, Is.Not.Zero, string.Join(" ", args));
            Assert.That(refused.Stderr, Does.Contain("refusing").Or.Contain("needs a value"), string.Join(" ", args));
            Assert.That(File.Exists(thesis), Is.True, string.Join(" ", args));
        }

        // A data dir that is LineAgent's but also holds other files: those and the folder stay.
        var data = Directory.CreateDirectory(Path.Combine(mac.Home, "lineagent-data")).FullName;
        foreach (var f in new[] { "lineagent.db", "lineagent.db-wal", "lineagent.db.damaged-20261201T000000Z", "api-token", "agent.lock", "lineagent.json" })
            File.WriteAllText(Path.Combine(data, f), "x");
        Directory.CreateDirectory(Path.Combine(data, "outbox"));
        Directory.CreateDirectory(Path.Combine(data, "backups"));
        File.WriteAllText(Path.Combine(data, "notes.txt"), "mine");
        var purged = await mac.UninstallAsync("--purge", "--data-dir", data);
        Assert.That(purged.ExitCode, Is.Zero, purged.Stderr);
        Assert.That(Directory.GetFileSystemEntries(data).Select(Path.GetFileName), Is.EqualTo(new[] { "notes.txt" }));
        Assert.That(purged.Stdout, Does.Contain($"kept {data}: it also holds files that are not LineAgent's (notes.txt)"));
        Assert.That(File.Exists(thesis) && File.Exists(Path.Combine(mac.Home, "lineagent.db")), Is.True);

        // backups/ and outbox/ are common names: alone they are not LineAgent's (review: a mistyped --data-dir lost them).
        var documents = Path.Combine(mac.Home, "Documents");
        Directory.CreateDirectory(Path.Combine(documents, "backups"));
        File.WriteAllText(Path.Combine(documents, "backups", "taxes.zip"), "x");
        Directory.CreateDirectory(Path.Combine(documents, "outbox"));
        File.WriteAllText(Path.Combine(documents, "api-token"), "another tool's");
        var mistyped = await mac.UninstallAsync("--purge", "--data-dir", documents);
        Assert.That(mistyped.ExitCode, Is.Zero, mistyped.Stderr);
        Assert.That(File.Exists(Path.Combine(documents, "backups", "taxes.zip")) && Directory.Exists(Path.Combine(documents, "outbox"))
            && File.Exists(Path.Combine(documents, "api-token")), Is.True, mistyped.Stdout);
        Assert.That(mistyped.Stdout, Does.Contain("is not installed here: nothing to do"));

        // A name with a line break in it is one name (review: it split into two, and rm -rf took the second).
        var linebreak = Directory.CreateDirectory(Path.Combine(mac.Home, "with-linebreak")).FullName;
        File.WriteAllText(Path.Combine(linebreak, "lineagent.db"), "x");
        File.WriteAllText(Path.Combine(linebreak, "lineagent.db-x\nProjects"), "x");
        Directory.CreateDirectory(Path.Combine(linebreak, "Projects"));
        File.WriteAllText(Path.Combine(linebreak, "Projects", "code.cs"), "x");
        Assert.That((await mac.UninstallAsync("--purge", "--data-dir", linebreak)).ExitCode, Is.Zero);
        Assert.That(File.Exists(Path.Combine(linebreak, "Projects", "code.cs")), Is.True);
        Assert.That(File.Exists(Path.Combine(linebreak, "lineagent.db-x\nProjects")), Is.False);

        // Thousands of other files: it says what it kept and finishes (review: SIGPIPE under pipefail ended it, exit 141).
        var crowded = Directory.CreateDirectory(Path.Combine(mac.Home, "crowded")).FullName;
        File.WriteAllText(Path.Combine(crowded, "lineagent.db"), "x");
        for (var i = 0; i < 3000; i++)
            File.WriteAllText(Path.Combine(crowded, $"some-rather-long-file-name-of-the-users-own-{i:0000}.txt"), "");
        var many = await mac.UninstallAsync("--purge", "--data-dir", crowded);
        Assert.That(many.ExitCode, Is.Zero, many.Stderr);
        Assert.That(many.Stdout, Does.Contain($"kept {crowded}: it also holds files that are not LineAgent's (some-rather-long-file-name-of-the-users-own-0000.txt")
            .And.Contain("the folder itself was kept"));

        // A data dir that is a link to another disk: its files and the emptied folder go, then the link (review: rmdir failed).
        var elsewhere = Directory.CreateDirectory(Path.Combine(dir.Path, "external", "LineAgent")).FullName;
        File.WriteAllText(Path.Combine(elsewhere, "lineagent.db"), "x");
        File.WriteAllText(Path.Combine(elsewhere, ".DS_Store"), "x");
        var linked = Path.Combine(mac.Home, "linked-data");
        File.CreateSymbolicLink(linked, elsewhere);
        var viaLink = await mac.UninstallAsync("--purge", "--data-dir", linked);
        Assert.That(viaLink.ExitCode, Is.Zero, viaLink.Stderr);
        Assert.That(Directory.Exists(elsewhere) || File.Exists(linked) || Directory.Exists(linked), Is.False, viaLink.Stdout);
    }

    /// <summary>
    /// install.sh --prefix ~/.local deleted ~/.local/bin (the user's tools) on a first install, made ~/.local mode 700 and
    /// put the database there; uninstall.sh then removed that bin/ as its own (probe).
    /// </summary>
    [Test]
    public async Task Install_IntoAFolderThatIsNotLineAgents_ShouldChangeNothing_AndUninstallShouldKeepAForeignBin()
    {
        using var dir = new TempDir();
        var mac = new FakeMac(dir.Path);
        mac.Publish("apphost v1", "dll v1");
        var local = Path.Combine(mac.Home, ".local");
        Directory.CreateDirectory(Path.Combine(local, "bin"));
        File.WriteAllText(Path.Combine(local, "bin", "mytool"), "#!/bin/sh");
        Directory.CreateDirectory(Path.Combine(local, "share", "important"));
        var modeBefore = File.GetUnixFileMode(local);

        var refused = await mac.InstallAsync(null, "--prefix", local);
        Assert.That(refused.ExitCode, Is.Not.Zero);
        Assert.That(refused.Stderr, Does.Contain($"refusing --prefix {local}: {local}/bin is not a LineAgent build"));
        Assert.That(File.Exists(Path.Combine(local, "bin", "mytool")), Is.True);
        Assert.That(File.GetUnixFileMode(local), Is.EqualTo(modeBefore));
        Assert.That(mac.Bin.Calls, Has.None.StartsWith("dotnet").And.None.StartsWith("launchctl bootstrap"));

        Directory.Delete(Path.Combine(local, "bin"), recursive: true);
        var stillForeign = await mac.InstallAsync(null, "--prefix", local);
        Assert.That(stillForeign.ExitCode, Is.Not.Zero);
        Assert.That(stillForeign.Stderr, Does.Contain($"refusing --prefix {local}: it already holds files that are not LineAgent's"));
        var foreignData = await mac.InstallAsync(null, "--data-dir", local);
        Assert.That(foreignData.Stderr, Does.Contain($"refusing --data-dir {local}: it already holds files that are not LineAgent's"));
        Assert.That(await mac.InstallAsync(null, "--prefix", mac.Home), Has.Property("ExitCode").Not.Zero);

        Directory.CreateDirectory(Path.Combine(local, "bin"));
        File.WriteAllText(Path.Combine(local, "bin", "mytool"), "#!/bin/sh");
        var uninstalled = await mac.UninstallAsync("--prefix", local);
        Assert.That(uninstalled.ExitCode, Is.Zero, uninstalled.Stderr);
        Assert.That(uninstalled.Stdout, Does.Contain($"kept {local}/bin: it is not a LineAgent build"));
        Assert.That(File.Exists(Path.Combine(local, "bin", "mytool")), Is.True);

        // backups/ beside nothing of LineAgent's is the user's folder (review: it made ~/Documents LineAgent's).
        var documents = Path.Combine(mac.Home, "Documents");
        Directory.CreateDirectory(Path.Combine(documents, "backups"));
        Assert.That((await mac.InstallAsync(null, "--data-dir", documents)).Stderr, Does.Contain($"refusing --data-dir {documents}"));
        // A data dir inside bin/ would go with the next build (review).
        Assert.That((await mac.InstallAsync(null, "--data-dir", Path.Combine(mac.Prefix, "bin", "data"))).Stderr, Does.Contain("inside"));

        // Finder's .DS_Store and a bin.new left by an install that stopped half-way do not make a folder foreign (review:
        // a failed codesign left bin.new, and every later install was refused).
        Directory.CreateDirectory(Path.Combine(mac.Prefix, "bin.new"));
        File.WriteAllText(Path.Combine(mac.Prefix, ".DS_Store"), "x");
        var afterAFailedOne = await mac.InstallAsync();
        Assert.That(afterAFailedOne.ExitCode, Is.Zero, afterAFailedOne.Stderr);
        var purged = await mac.UninstallAsync("--purge");
        Assert.That(purged.ExitCode, Is.Zero, purged.Stderr);
        Assert.That(Directory.Exists(mac.Prefix), Is.False, purged.Stdout);

        // A new folder is fine, and a second install into it (its own bin/ now) too.
        var own = Path.Combine(mac.Home, "Apps", "LineAgent");
        Assert.That((await mac.InstallAsync(null, "--prefix", own)).ExitCode, Is.Zero);
        Assert.That((await mac.InstallAsync(null, "--prefix", own + "/")).ExitCode, Is.Zero);
        Assert.That(File.Exists(Path.Combine(own, "bin", "lineagent")), Is.True);
    }

    [Test]
    public async Task Install_ShouldKeepAnUnchangedBinary_AndSayWhenPermissionsMustBeGrantedAgain()
    {
        using var dir = new TempDir();
        var mac = new FakeMac(dir.Path);
        mac.Publish("apphost v1", "dll v1");

        var first = await mac.InstallAsync();
        Assert.That(first.ExitCode, Is.Zero, first.Stderr);
        Assert.That(first.Stdout, Does.Contain("First install: grant Full Disk Access and Automation"));
        Assert.That(File.ReadAllText(mac.Installed("lineagent")), Is.EqualTo("apphost v1"));
        Assert.That(mac.Bin.Calls, Has.Some.StartsWith("launchctl bootstrap gui/"));
        Assert.That(mac.Bin.Calls, Has.None.StartsWith("codesign"), "no --sign: dotnet's ad-hoc signature stays");
        var plist = Plist.ParseDict(File.ReadAllText(Path.Combine(mac.Home, "Library", "LaunchAgents", "com.lineagent.agent.plist")));
        Assert.That(plist["EnvironmentVariables"].Json!["LINEAGENT__Agent__InstallPrefix"]!.GetValue<string>(), Is.EqualTo(mac.Prefix));

        // The same build again: the installed bin/ is not touched (a file only it has survives).
        File.WriteAllText(mac.Installed("only-in-the-installed-dir"), "");
        var same = await mac.InstallAsync();
        Assert.That(same.ExitCode, Is.Zero, same.Stderr);
        Assert.That(same.Stdout, Does.Contain("identical to the installed build").And.Contain("grants stay valid"));
        Assert.That(File.Exists(mac.Installed("only-in-the-installed-dir")), Is.True, "bin/ was left as it was");
        Assert.That(Directory.Exists(Path.Combine(mac.Prefix, "bin.new")), Is.False);
        Assert.That(same.Stdout, Does.Not.Contain("!!"));

        // Only the dll changed: the new files go in, the installed executable file itself is kept.
        mac.Publish("apphost v1", "dll v2");
        var inode = await FakeMac.InodeAsync(mac.Installed("lineagent"));
        var dllOnly = await mac.InstallAsync();
        Assert.That(dllOnly.ExitCode, Is.Zero, dllOnly.Stderr);
        Assert.That(File.ReadAllText(mac.Installed("lineagent.dll")), Is.EqualTo("dll v2"));
        Assert.That(await FakeMac.InodeAsync(mac.Installed("lineagent")), Is.EqualTo(inode));
        Assert.That(dllOnly.Stdout, Does.Contain("executable is unchanged").And.Not.Contain("!!"));

        // A changed ad-hoc signed executable: installed, with a loud "grant again" and the way out.
        mac.Publish("apphost v2", "dll v2");
        var changed = await mac.InstallAsync();
        Assert.That(changed.ExitCode, Is.Zero, changed.Stderr);
        Assert.That(File.ReadAllText(mac.Installed("lineagent")), Is.EqualTo("apphost v2"));
        Assert.That(changed.Stdout, Does.Contain("!! The lineagent executable changed and is ad-hoc signed"));
        Assert.That(changed.Stdout, Does.Contain("Full Disk Access: select lineagent, remove it (-), then add"));
        Assert.That(changed.Stdout, Does.Contain("install.sh --sign \"NAME\""));
    }

    [Test]
    public async Task InstallWithSign_ShouldSignWithTheCertificate_AndKeepGrantsAcrossRebuilds()
    {
        using var dir = new TempDir();
        var mac = new FakeMac(dir.Path);
        mac.Publish("apphost v1", "dll v1");
        Assert.That((await mac.InstallAsync()).ExitCode, Is.Zero);

        var staged = Path.Combine(mac.Prefix, "bin.new", "lineagent");
        var switched = await mac.InstallAsync(null, "--sign", "LineAgent Signing");
        Assert.That(switched.ExitCode, Is.Zero, switched.Stderr);
        Assert.That(mac.Bin.Calls, Does.Contain($"codesign --force --sign LineAgent Signing --identifier com.lineagent.agent {staged}"));
        Assert.That(File.ReadAllText(mac.Installed("lineagent")), Does.StartWith("apphost v1signature by LineAgent Signing"));
        Assert.That(switched.Stdout, Does.Contain("now signed with the certificate 'LineAgent Signing' (before: ad-hoc)")
            .And.Contain("grant Full Disk Access and Automation once more"));

        // Same build, same certificate (from the environment this time): nothing is signed or replaced,
        // although signing twice would give different bytes (the signature holds its time).
        var signature = File.ReadAllText(mac.Installed("lineagent"));
        var same = await mac.InstallAsync("LineAgent Signing");
        Assert.That(same.ExitCode, Is.Zero, same.Stderr);
        Assert.That(mac.Bin.Calls, Has.None.StartsWith("codesign --force"));
        Assert.That(File.ReadAllText(mac.Installed("lineagent")), Is.EqualTo(signature));
        Assert.That(same.Stdout, Does.Contain("identical to the installed build"));

        mac.Publish("apphost v2", "dll v2");
        var rebuilt = await mac.InstallAsync(null, "--sign", "LineAgent Signing");
        Assert.That(rebuilt.ExitCode, Is.Zero, rebuilt.Stderr);
        Assert.That(mac.Bin.Calls, Has.Some.StartsWith("codesign --force --sign LineAgent Signing"));
        Assert.That(rebuilt.Stdout, Does.Contain("signed with the certificate 'LineAgent Signing' as before").And.Contain("the grants stay valid"));
        Assert.That(rebuilt.Stdout, Does.Not.Contain("!!"));

        var adHoc = await mac.InstallAsync(null, "--sign", "-");
        Assert.That(adHoc.ExitCode, Is.EqualTo(1));
        Assert.That(adHoc.Stderr, Does.Contain("--sign - is ad-hoc signing"));
    }

    [Test]
    public async Task MenuBarPlugin_ShouldShowTheRunningAgent_AndPauseALine()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        using (var api = agent.Api())
        {
            await (await api.SendMessageAsync(new { content = "hi", recipientPhone = "+12025550123" })).ExpectAsync(System.Net.HttpStatusCode.Created);
            await (await api.SendMessageAsync(new { content = "later", recipientPhone = "+12025550123", scheduledAt = DateTimeOffset.UtcNow.AddHours(2).ToString("O") }))
                .ExpectAsync(System.Net.HttpStatusCode.Created);
        }
        var env = PluginEnv(dir.Path, out _, out var pythonRan);
        env["LINEAGENT_URL"] = agent.BaseAddress.ToString().TrimEnd('/');
        env["LINEAGENT_TOKEN"] = agent.Token;
        var plugin = Launchd("menubar/lineagent.30s.sh");

        var output = await Programs.RunAsync("/bin/bash", [plugin], env);
        TestContext.Out.WriteLine(output.Stdout);
        Assert.That(output.ExitCode, Is.Zero, output.Stderr);
        var lines = output.Lines;
        Assert.That(lines[0], Does.Match(@"^DRY . 0$"), "bar: dry-run marker, state glyph, queued count");
        Assert.That(lines[1], Is.EqualTo("---"));
        Assert.That(lines[2], Does.StartWith("LineAgent 0.1.0 — up "));
        Assert.That(lines, Has.Some.StartsWith("Dry run: sends go to "));
        Assert.That(lines, Has.Some.EqualTo("Default line: active"));
        Assert.That(lines, Has.Some.Match(@"^--imessage: ok"));
        Assert.That(lines, Has.None.Contains("window closed"), "the dry-run outbox is not paced");
        Assert.That(lines, Has.Some.Match(@"^--sent today 1, this hour 1 \(not paced\)$"), "no caps for a line that is not paced (probe: 1/200)");
        Assert.That(lines, Has.Some.Match(@"^--Pause line \| bash=.*lineagent\.30s\.sh param1=pause param2=default terminal=false refresh=true$"));
        Assert.That(lines, Has.Some.EqualTo("Scheduled: 1"));
        Assert.That(lines, Has.Some.EqualTo("Sent today: 1"));
        Assert.That(lines, Has.Some.EqualTo("Failed today: 0"));
        Assert.That(lines, Has.Some.Match(@"^Next send: \w{3} \d{2} \w{3}( " + DateTime.Now.AddHours(2).Year + @")? \d{2}:\d{2}$"));
        Assert.That(lines, Has.Some.EqualTo("Last error: none"));
        Assert.That(lines, Has.Some.Match(@"^Open log in Console \| bash=/usr/bin/open param1=-a param2=Console param3=.*lineagent\.log terminal=false$"));
        Assert.That(lines, Has.Some.EqualTo($"Open API docs | href={agent.BaseAddress.ToString().TrimEnd('/')}/openapi/v1.json"));
        Assert.That(lines, Has.Some.Match(@"^Open console \| bash=.*lineagent\.30s\.sh param1=console terminal=false$"));
        Assert.That(lines.Last(), Is.EqualTo("Refresh | refresh=true"));

        var pause = await Programs.RunAsync("/bin/bash", [plugin, "pause", "default"], env);
        Assert.That(pause.ExitCode, Is.Zero, pause.Stderr);
        var paused = await Programs.RunAsync("/bin/bash", [plugin], env);
        Assert.That(paused.Lines[0], Does.Contain("⏸"));
        Assert.That(paused.Lines, Has.Some.EqualTo("Default line: paused"));
        Assert.That(paused.Lines, Has.Some.Match(@"^--Resume line \| .*param1=resume param2=default"));
        var resume = await Programs.RunAsync("/bin/bash", [plugin, "resume", "default"], env);
        Assert.That(resume.ExitCode, Is.Zero);
        var unknown = await Programs.RunAsync("/bin/bash", [plugin, "pause", "nope"], env);
        Assert.That(unknown.ExitCode, Is.EqualTo(1));
        Assert.That(unknown.Stdout, Does.Contain("HTTP 404: "), "the problem's detail, read by the agent binary");
        Assert.That(File.Exists(pythonRan), Is.False, "the plugin read every answer without Python");

        // A next send in another year says which.
        using (var api = agent.Api())
        {
            foreach (var m in (await api.GetJsonAsync("/api/messages?status=scheduled"))["items"]!.AsArray())
                await (await api.PostAsync($"/api/messages/{m.Str("id")}/cancel", null)).ExpectAsync(System.Net.HttpStatusCode.OK);
            await (await api.SendMessageAsync(new { content = "far", recipientPhone = "+12025550123", scheduledAt = "2040-01-01T12:00:00Z" }))
                .ExpectAsync(System.Net.HttpStatusCode.Created);
        }
        var far = await Programs.RunAsync("/bin/bash", [plugin], env);
        Assert.That(far.Lines, Has.Some.Match(@"^Next send: \w{3} 01 Jan 2040 \d{2}:\d{2}$"), far.Stdout);
    }

    [Test]
    public async Task MenuBarPlugin_OpenConsole_ShouldOpenTheBrowserAtAOneTimeLink()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        var env = PluginEnv(dir.Path, out var fakes, out _);
        env["LINEAGENT_URL"] = agent.BaseAddress.ToString().TrimEnd('/');
        env["LINEAGENT_TOKEN"] = agent.Token;
        // The browser: xdg-open here (`open` on a Mac) records the link it was given.
        fakes.Add("xdg-open", "log_call \"$@\"");

        var opened = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh"), "console"], env);
        Assert.That(opened.ExitCode, Is.Zero, opened.Stdout + opened.Stderr);
        var call = await Eventually.ValueAsync(() => Task.FromResult(fakes.Calls.FirstOrDefault(c => c.StartsWith("xdg-open "))),
            c => c is not null, "the browser was started", TimeSpan.FromSeconds(20));
        var url = call!["xdg-open ".Length..];
        Assert.That(url, Does.StartWith(agent.BaseAddress + "login?code="));
        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        Assert.That((await browser.GetAsync(url)).StatusCode, Is.EqualTo(System.Net.HttpStatusCode.Redirect), "the link signs in");

        // A build of the agent without `open` is never run with the word (it would start a second agent).
        fakes.Add("old-lineagent", "log_call \"$@\"\ncase \"$*\" in *--help*) printf 'Usage:\\n  lineagent [command] [options]\\n'; exit 0 ;; esac\nexit 1");
        env["LINEAGENT_BIN"] = Path.Combine(fakes.Dir, "old-lineagent");
        fakes.ClearCalls();
        var old = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh"), "console"], env);
        Assert.That(old.ExitCode, Is.EqualTo(1));
        Assert.That(old.Stdout, Does.Contain("has no console"));
        Assert.That(fakes.Calls, Is.EqualTo(new[] { "old-lineagent open --help" }));
    }

    /// <summary>
    /// The plugin's environment in tests: HOME, TMPDIR, LINEAGENT_BIN as a wrapper that runs this build of the
    /// agent (as the installed PREFIX/bin/lineagent would), and a PATH whose python3 only leaves a marker behind.
    /// </summary>
    /// <summary>The plugin's environment against a stand-in that answers /api/status at <paramref name="url"/>.</summary>
    private static Dictionary<string, string?> StatusServerEnv(string dir, Uri url)
    {
        var env = PluginEnv(dir, out _, out _);
        env["LINEAGENT_URL"] = url.ToString().TrimEnd('/');
        env["LINEAGENT_TOKEN"] = "t";
        return env;
    }

    private static Dictionary<string, string?> PluginEnv(string dir, out FakeBin fakes, out string pythonRan)
    {
        pythonRan = Path.Combine(dir, "python-ran");
        fakes = new FakeBin(dir).NoPython(pythonRan)
            .Add("lineagent", $"exec dotnet '{AgentProcess.AgentDll}' \"$@\"");
        return new Dictionary<string, string?>
        {
            ["HOME"] = dir, ["TMPDIR"] = dir, ["PATH"] = fakes.PathVariable,
            ["LINEAGENT_BIN"] = Path.Combine(fakes.Dir, "lineagent"), ["LINEAGENT_JSON"] = null,
        };
    }

    /// <summary>
    /// Whatever answers on the agent's port writes the menu's text: U+0085 (SwiftBar splits lines on it, as on every
    /// Unicode newline) made menu items of its own, and counts went out raw, so `3\u0085evil | href=file:///...` became a
    /// clickable item (probe). A 503 said "Agent not running" and offered kickstart -k, which kills a running agent.
    /// </summary>
    [Test]
    public async Task MenuBarPlugin_ShouldKeepHostileStatusTextOnItsOwnLine_AndNotOfferAStartToAnAgentThatAnswers()
    {
        using var dir = new TempDir();
        var status = JsonNode.Parse(File.ReadAllText(Programs.RepoFile(Path.Combine("launchd", "test-fixtures", "status-sample.json"))))!.AsObject();
        const string Evil = "x\u0085--Evil item\u0085---\u009bClick me | bash=/bin/sh";
        status["lastError"]!["message"] = Evil;
        status["lines"]![0]!["name"] = Evil;
        status["lines"]![0]!["health"]![0]!["detail"] = Evil;
        status["counts"]!["queued"] = "3\u0085evil | href=file:///etc/passwd";
        status["counts"]!["scheduled"] = "4 | bash=/bin/sh";
        status["lines"]![0]!["usage"]!["maxPerDay"] = "200\u2028evil | href=file:///etc/passwd";
        var failing = false;
        var aborting = false;
        var (app, url) = await LoopbackServer.StartAsync(a => a.MapGet("/api/status", (Microsoft.AspNetCore.Http.HttpContext http) =>
        {
            if (aborting)
                http.Abort();
            return failing
                ? Microsoft.AspNetCore.Http.Results.StatusCode(503)
                : Microsoft.AspNetCore.Http.Results.Content(status.ToJsonString(), "application/json");
        }));
        await using var server = app;
        var env = StatusServerEnv(dir.Path, url);

        var output = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(output.Stdout);
        Assert.That(output.ExitCode, Is.Zero, output.Stderr);
        // SwiftBar's line split: \n, \r, U+0085, U+2028, U+2029.
        var lines = output.Stdout.Split(['\n', '\r', '\u0085', '\u2028', '\u2029']);
        Assert.That(output.Stdout.IndexOfAny(['\u0085', '\u009b', '\u2028']), Is.EqualTo(-1), "ordinal: ICU's culture-aware search ignores these");
        Assert.That(lines, Has.None.StartsWith("evil").And.None.StartsWith("Click me").And.None.StartsWith("--Evil"));
        Assert.That(lines.Where(l => l.Contains("| href=file") || l.Contains("| bash=/bin/sh")), Is.Empty, output.Stdout);
        Assert.That(lines[0], Does.EndWith(" ?"), "a count that is not a number is unknown");
        Assert.That(lines, Has.Some.EqualTo("Scheduled: ?"));

        failing = true;
        var refused = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(refused.Stdout);
        Assert.That(refused.Lines[0], Is.EqualTo("◐ LineAgent"));
        Assert.That(refused.Lines, Has.Some.EqualTo("Agent not answering normally | color=red"));
        Assert.That(refused.Stdout, Does.Contain("answered HTTP 503").And.Not.Contain("Start it").And.Not.Contain("not running"));

        // A connection taken and dropped without an answer (an agent stopping): not "not running" either (review).
        aborting = true;
        var dropped = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(dropped.Stdout);
        Assert.That(dropped.Lines[0], Is.EqualTo("◐ LineAgent"));
        Assert.That(dropped.Stdout, Does.Contain("broke off its answer (curl error").And.Not.Contain("Start it"));
    }

    /// <summary>
    /// A full disk stops every line, but the menu showed it only as "Last error: storage_full — ..." at the bottom, under a
    /// green glyph (probe). It is said under the title and the glyph shows trouble; an ordinary last error is not.
    /// </summary>
    [TestCase("storage_full", "Disk full: nothing is sent until there is room")]
    [TestCase("recovery_pending", "Not sending yet: the previous run's messages are being settled")]
    [TestCase("imessage_unavailable", null)]
    public async Task MenuBarPlugin_ShouldSayAStoppedAgentUnderTheTitle(string code, string? said)
    {
        using var dir = new TempDir();
        var status = JsonNode.Parse(File.ReadAllText(Programs.RepoFile(Path.Combine("launchd", "test-fixtures", "status-sample.json"))))!.AsObject();
        status["lastError"]!["code"] = code;
        status["lastError"]!["messageId"] = null;
        status["lines"]![0]!["health"]![1]!["state"] = "ok"; // only the storage is wrong
        var (app, url) = await LoopbackServer.StartAsync(a => a.MapGet("/api/status", () => Microsoft.AspNetCore.Http.Results.Content(status.ToJsonString(), "application/json")));
        await using var server = app;
        var env = StatusServerEnv(dir.Path, url);

        var output = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(output.Stdout);

        Assert.That(output.ExitCode, Is.Zero, output.Stderr);
        var firstSeparator = Array.IndexOf(output.Lines, "---");
        var second = Array.IndexOf(output.Lines, "---", firstSeparator + 1);
        var header = output.Lines.Skip(firstSeparator + 1).Take(second - firstSeparator - 1).ToList();
        if (said is null)
        {
            Assert.That(output.Lines[0], Is.EqualTo("● 1"));
            Assert.That(header, Has.None.Contains("color=red"));
        }
        else
        {
            Assert.That(output.Lines[0], Is.EqualTo("◐ 1"), "the glyph shows trouble");
            Assert.That(header, Has.Some.EqualTo($"{said} | color=red"));
        }
        Assert.That(output.Lines, Has.Some.StartsWith($"Last error: {code} — "));
    }

    [Test]
    public async Task MenuBarPlugin_ShouldNotRunAnAgentBuildWithoutTheReader()
    {
        using var dir = new TempDir();
        using var agent = await AgentProcess.StartAsync(dir.Path, args: ["--dry-run"]);
        var env = PluginEnv(dir.Path, out var fakes, out var pythonRan);
        env["LINEAGENT_URL"] = agent.BaseAddress.ToString().TrimEnd('/');
        env["LINEAGENT_TOKEN"] = agent.Token;
        // A build from before `menubar-records`: its help does not know the command; anything else would start an agent.
        fakes.Add("old-lineagent", "log_call \"$@\"\ncase \"$*\" in *--help*) printf 'Usage:\\n  lineagent [command] [options]\\n'; exit 0 ;; esac\nexit 1");
        env["LINEAGENT_BIN"] = Path.Combine(fakes.Dir, "old-lineagent");

        var output = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        var again = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(output.Stdout);
        Assert.That(fakes.Calls, Is.EqualTo(new[] { "old-lineagent menubar-records --help" }), "asked once (remembered), never run on the JSON");
        Assert.That(File.Exists(pythonRan), Is.True, "on Linux the last resort is python3 (here a stand-in that fails)");
        Assert.That(output.Stdout + again.Stdout, Does.Contain("Cannot read the agent's answer"));
    }

    [Test]
    public async Task MenuBarPlugin_Start_ShouldKickstartALoadedAgent_AndBootstrapOneThatIsNot()
    {
        using var dir = new TempDir();
        var loaded = Path.Combine(dir.Path, "loaded");
        var fakes = new FakeBin(dir.Path).Add("launchctl",
            $"log_call \"$@\"\ncase \"$1\" in print) [ -e '{loaded}' ] || exit 113 ;; bootstrap) touch '{loaded}' ;; esac");
        var env = new Dictionary<string, string?> { ["HOME"] = dir.Path, ["PATH"] = fakes.PathVariable, ["LINEAGENT_LABEL"] = "com.example.line2" };
        var plugin = Launchd("menubar/lineagent.30s.sh");
        var plist = Path.Combine(dir.Path, "Library", "LaunchAgents", "com.example.line2.plist");

        var missing = await Programs.RunAsync("/bin/bash", [plugin, "start"], env);
        Assert.That(missing.ExitCode, Is.EqualTo(1));
        Assert.That(missing.Stdout, Does.Contain("does not exist: install it with launchd/install.sh"));

        Directory.CreateDirectory(Path.GetDirectoryName(plist)!);
        File.WriteAllText(plist, "<plist/>");
        fakes.ClearCalls();
        var bootstrapped = await Programs.RunAsync("/bin/bash", [plugin, "start"], env);
        Assert.That(bootstrapped.ExitCode, Is.Zero, bootstrapped.Stdout + bootstrapped.Stderr);
        var uid = (await Programs.RunAsync("id", ["-u"])).Stdout.Trim();
        Assert.That(fakes.Calls, Is.EqualTo(new[]
        {
            $"launchctl print gui/{uid}/com.example.line2",
            $"launchctl enable gui/{uid}/com.example.line2",
            $"launchctl bootstrap gui/{uid} {plist}",
        }), "not loaded (booted out): kickstart would fail with 113, so enable and bootstrap");

        fakes.ClearCalls();
        var restarted = await Programs.RunAsync("/bin/bash", [plugin, "start"], env);
        Assert.That(restarted.ExitCode, Is.Zero);
        Assert.That(fakes.Calls, Is.EqualTo(new[]
        {
            $"launchctl print gui/{uid}/com.example.line2",
            $"launchctl kickstart -k gui/{uid}/com.example.line2",
        }));
    }

    [Test]
    public async Task MenuBarPlugin_ShouldDeclareItsSettingsForXbarAndSwiftBar()
    {
        var lines = await File.ReadAllLinesAsync(Launchd("menubar/lineagent.30s.sh"));
        string[] names = ["LINEAGENT_PREFIX", "LINEAGENT_DATA_DIR", "LINEAGENT_URL", "LINEAGENT_LABEL"];
        foreach (var name in names)
        {
            var declaration = lines.Where(l => l.StartsWith($"# <xbar.var>string({name}=", StringComparison.Ordinal)).ToList();
            Assert.That(declaration, Has.Count.EqualTo(1), name);
            Assert.That(declaration[0], Does.Match($"^# <xbar\\.var>string\\({name}=\"\"\\): [^=]+</xbar\\.var>$"),
                "an empty default, and no '=' anywhere else (xbar refuses it in defaults)");
        }
        // SwiftBar reads the first <swiftbar.environment> tag in the file, splits it on ',' and each pair on '='.
        var text = string.Join('\n', lines);
        Assert.That(text.Split("<swiftbar.environment>").Length, Is.EqualTo(2), "exactly one tag");
        var environment = lines.Single(l => l.Contains("<swiftbar.environment>"));
        Assert.That(environment, Is.EqualTo("# <swiftbar.environment>[" + string.Join(", ", names.Select(n => n + "=")) + "]</swiftbar.environment>"));

        // An empty value, or the "" a host may pass for it, means the default.
        using var dir = new TempDir();
        var env = new Dictionary<string, string?>
        {
            ["HOME"] = dir.Path, ["LINEAGENT_URL"] = "\"\"", ["LINEAGENT_PREFIX"] = "", ["LINEAGENT_DATA_DIR"] = "\"\"", ["LINEAGENT_TOKEN"] = "x",
        };
        var output = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        Assert.That(output.Lines[0], Is.EqualTo("○ LineAgent"), output.Stderr);
        Assert.That(output.Stdout, Does.Contain("Nothing answers at http://127.0.0.1:5117"));
    }

    [Test]
    public async Task MenuBarPlugin_ShouldSayAgentNotRunning_WhenNothingAnswers()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string?> { ["LINEAGENT_URL"] = "http://127.0.0.1:9", ["LINEAGENT_TOKEN"] = "x", ["HOME"] = dir.Path };
        var output = await Programs.RunAsync("/bin/bash", [Launchd("menubar/lineagent.30s.sh")], env);
        TestContext.Out.WriteLine(output.Stdout);
        Assert.That(output.ExitCode, Is.Zero);
        Assert.That(output.Lines[0], Is.EqualTo("○ LineAgent"));
        Assert.That(output.Lines[1], Is.EqualTo("---"));
        Assert.That(output.Lines[2], Is.EqualTo("Agent not running"));
        Assert.That(output.Lines, Has.Some.Match(@"^Start it \| bash=.*lineagent\.30s\.sh param1=start terminal=false refresh=true$"),
            "the plugin's own start: kickstart when loaded, else enable + bootstrap");
        Assert.That(output.Lines.Last(), Is.EqualTo("Refresh | refresh=true"));
        Assert.That(output.Stdout, Does.Not.Contain("Scheduled:"), "nothing that pretends to know the agent's state");
    }

    [Test]
    public void GeneratedToken_ShouldBeWrittenWithMode0600_AndReused()
    {
        using var dir = new TempDir();
        var first = new ApiToken(Options.Create(new ApiOptions()), new DataDirectory(dir.Path));
        var second = new ApiToken(Options.Create(new ApiOptions()), new DataDirectory(dir.Path));
        Assert.That(second.Value, Is.EqualTo(first.Value));
        Assert.That(File.GetUnixFileMode(dir.File("api-token")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(first.Matches(first.Value), Is.True);
        Assert.That(first.Matches(first.Value + "x"), Is.False);

        // Made readable by others (a copy, a chmod): back to 0600 at the next start, as the database files are (probe L).
        File.SetUnixFileMode(dir.File("api-token"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var third = new ApiToken(Options.Create(new ApiOptions()), new DataDirectory(dir.Path));
        Assert.That(third.Value, Is.EqualTo(first.Value));
        Assert.That(File.GetUnixFileMode(dir.File("api-token")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }
}
