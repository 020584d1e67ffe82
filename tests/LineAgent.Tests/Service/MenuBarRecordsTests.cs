using System.Text;
using LineAgent.Cli;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Service;

/// <summary>
/// `lineagent menubar-records`, the menu-bar plugin's JSON reader, prints what the plugin's Python reader
/// prints. The *.records files in launchd/test-fixtures were written by that Python reader (once, by hand:
/// the tests run no Python) from the *.json next to them.
/// </summary>
public sealed class MenuBarRecordsTests
{
    private static string Fixture(string name) => Programs.RepoFile(Path.Combine("launchd", "test-fixtures", name));

    private static string? Render(string mode, string json) => MenuBarRecords.Render(mode, Encoding.UTF8.GetBytes(json));

    [TestCase("status", "status-sample")]
    [TestCase("status", "status-tricky")]
    [TestCase("problem", "problem-values")]
    public void Records_ShouldBeThoseOfThePythonReader(string mode, string fixture)
    {
        var expected = File.ReadAllText(Fixture(fixture + ".records"), Encoding.UTF8);
        var actual = MenuBarRecords.Render(mode, File.ReadAllBytes(Fixture(fixture + ".json")));
        Assert.That(actual, Is.EqualTo(expected));
    }

    [Test]
    public void Records_ShouldCleanShortenAndConvertLikePython()
    {
        const char us = '\x1f';
        // Control characters become spaces, Python's strip(), at most n code points with "…" last.
        Assert.That(Render("problem", """{"detail": "  Line \u0000 x\u2028 ", "title": "t"}"""), Is.EqualTo($"P{us}Line   x\n"));
        Assert.That(Render("problem", $$"""{"detail": "{{new string('é', 200)}}"}"""), Is.EqualTo($"P{us}{new string('é', 159)}…\n"));
        // C1 too: SwiftBar splits lines on U+0085 (probe); Python's reader and the JXA one drop \x80-\x9f as well.
        Assert.That(Render("problem", """{"detail": "a\u0085b\u009bc\u0080d"}"""), Is.EqualTo($"P{us}a b c d\n"));
        // detail, or title when detail is falsy in Python ("", 0, [], {}, false).
        foreach (var falsy in new[] { "\"\"", "0", "0.0", "[]", "{}", "false", "null" })
            Assert.That(Render("problem", $$"""{"detail": {{falsy}}, "title": "Not found"}"""), Is.EqualTo($"P{us}Not found\n"), falsy);
        Assert.That(Render("problem", """{"type": "x"}"""), Is.EqualTo($"P{us}\n"));
        // Numbers as str(int) when integral, else Python's float repr; JSON true/false as true/false.
        Assert.That(Render("status", """{"version": 5.0, "uptimeSeconds": 1e-7, "dryRun": 1, "dryRunOutbox": -0.0}"""),
            Is.EqualTo($"A{us}5{us}1e-07{us}1{us}0\nC{us}{us}{us}{us}{us}\nN{us}\n"));
        Assert.That(Render("status", """{"uptimeSeconds": 1e400, "version": [1e22, 100.0, true, null, "it's"]}"""),
            Does.StartWith($"A{us}[1e+22, 100.0, True, None, \"it's\"]{us}inf{us}"));
        // Times: Z, offsets with and without a colon, none (UTC), fractions; anything else is empty.
        Assert.That(Render("status", """{"nextScheduledAt": "2026-11-26T23:00:00Z"}"""), Does.EndWith($"N{us}1795734000\n"));
        Assert.That(Render("status", """{"nextScheduledAt": "2026-11-27T08:00:00.123456+05:30"}"""), Does.EndWith($"N{us}1795746600\n"));
        Assert.That(Render("status", """{"nextScheduledAt": "2026-11-27T08:00:00-0800"}"""), Does.EndWith($"N{us}1795795200\n"));
        Assert.That(Render("status", """{"nextScheduledAt": "1969-07-20T20:17:40"}"""), Does.EndWith($"N{us}-14182940\n"));
        Assert.That(Render("status", """{"nextScheduledAt": "2026-11-27 08:00:00Z"}"""), Does.EndWith($"N{us}\n"));
        Assert.That(Render("status", """{"nextScheduledAt": 1234}"""), Does.EndWith($"N{us}\n"));
    }

    [Test]
    public void Records_ShouldSayWhyTheJsonCannotBeRead_OrFailWherePythonWould()
    {
        Assert.That(Render("status", "[1, 2]"), Is.EqualTo("X\x1fnot a JSON object\n"));
        Assert.That(Render("problem", "\"text\""), Is.EqualTo("X\x1fnot a JSON object\n"));
        Assert.That(Render("status", "{\"version\": 1"), Does.StartWith("X\x1f"));
        Assert.That(MenuBarRecords.Render("status", [0xff, (byte)'{', (byte)'}']), Does.StartWith("X\x1f"), "not UTF-8");
        Assert.That(MenuBarRecords.Render("status", [0xef, 0xbb, 0xbf, (byte)'{', (byte)'}']), Does.StartWith("X\x1f"), "a byte order mark, as json.loads refuses it");
        // Python's datetime() raises on an impossible date and the reader prints nothing: the plugin says it failed.
        Assert.That(Render("status", """{"nextScheduledAt": "2026-13-01T00:00:00Z"}"""), Is.Null);
    }

    [Test]
    public async Task Command_ShouldReadStdin_AndExit1WithoutOutputWhenItFails()
    {
        async Task<Programs.Result> Run(string mode, string file) =>
            await Programs.RunAsync("/bin/sh", ["-c", "exec dotnet \"$0\" menubar-records \"$1\" < \"$2\"", AgentProcess.AgentDll, mode, file]);

        var sample = await Run("status", Fixture("status-sample.json"));
        Assert.That(sample.ExitCode, Is.Zero, sample.Stderr);
        Assert.That(sample.Stdout, Is.EqualTo(File.ReadAllText(Fixture("status-sample.records"), Encoding.UTF8)));

        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad-date.json"), """{"nextScheduledAt": "2026-02-30T00:00:00Z"}""");
        var failed = await Run("status", dir.File("bad-date.json"));
        Assert.That((failed.ExitCode, failed.Stdout), Is.EqualTo((1, "")));

        var wrongMode = await Run("lines", Fixture("status-sample.json"));
        Assert.That(wrongMode.ExitCode, Is.Not.Zero, "only status and problem");
    }
}
