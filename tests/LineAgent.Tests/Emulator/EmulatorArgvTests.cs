using System.Diagnostics;
using System.Text;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Emulator;

/// <summary>calls.ndjson keeps every argv byte for byte, also under parallel callers; a recordOnly call is quick.</summary>
public sealed class EmulatorArgvTests() : EmulatorTest(26)
{
    private static readonly string[] Atoms =
    [
        "\"", "'", "\\", "\\\"", "\\\\n", "`", "$(", "$HOME", "${x}", "\n", "\r", "\r\n", "\t", " ", "  ", ";", "&", "|", ">", "<", "*", "?", "~",
        "#", "%", "%s", "%n", "{0}", "-", "--", "-e", "\u200f", "\u200e", "\u202e", "\u2066", "\ufffc", "\ufeff", "\u2028", "\u00a0", "😀",
        "👨‍👩‍👧‍👦", "🇺🇸", "é", "e\u0301", "日本語", "عربى", "שלום", "\x7f", "\x01", "\x1b[31m", "tell application \"Finder\" to quit",
        "\" & (do shell script \"touch /tmp/pwned\") & \"", "end run", "«data utxt00410042»", "'; DROP TABLE message; --", "+12025550123", "a@b.c",
    ];

    [Test]
    public async Task HostileArgumentLists_ShouldBeRecordedByteExact_WithFourCallersInParallel()
    {
        Emu.Control(new { recordOnly = true });
        var random = new Random(20240601);
        string Hostile(int i) => (i % 10) switch
        {
            0 => "",
            1 when i % 30 == 1 => string.Concat(Enumerable.Range(0, 4000).Select(_ => Atoms[random.Next(Atoms.Length)]))[..10_000],
            _ => string.Concat(Enumerable.Range(0, new[] { 1, 2, 3, 5, 12, 40 }[random.Next(6)]).Select(_ => Atoms[random.Next(Atoms.Length)])),
        };
        var calls = Enumerable.Range(0, 200).Select(i =>
        {
            var argc = i % 25 != 0 ? 3 : new[] { 0, 1, 2, 4, 5 }[i / 25 % 5];
            return Enumerable.Range(0, argc).Select(j => Hostile(i * 7 + j)).ToArray();
        }).ToList();

        var results = new List<ScriptRun>();
        await Parallel.ForEachAsync(calls, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (args, _) =>
        {
            var run = await SendAsync(args);
            lock (results) results.Add(run);
        });

        Assert.That(results.Where(r => r != new ScriptRun(0, "", "")), Is.Empty, "every recordOnly call exits 0 silently");
        var records = Emu.CallRecords();
        Assert.That(records, Has.Count.EqualTo(calls.Count));
        Assert.That(records.All(r => r["script"]!.GetValue<string>() == "send.applescript" && r["argc"]!.GetValue<int>() == r["argv_b64"]!.AsArray().Count), Is.True);
        var expected = calls.Select(Key).Order().ToList();
        var received = Emu.Calls().Select(c => string.Join(" ", c.Argv.Select(Convert.ToBase64String))).Order().ToList();
        Assert.That(received, Is.EqualTo(expected));
        Assert.That(File.Exists(Emu.ChatDb), Is.True, "(init made it; recordOnly does not touch it)");
        Assert.That(LastRowId(), Is.Zero);

        static string Key(string[] args) => string.Join(" ", args.Select(a => Convert.ToBase64String(Encoding.UTF8.GetBytes(a))));
    }

    [Test]
    public async Task BytesThatAreNotUtf8_ShouldBeRecordedAsTheyCame()
    {
        Emu.Control(new { recordOnly = true });
        // .NET can only pass UTF-8 arguments: let the shell make the raw bytes FF FE 80 41 C3.
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" \"$1\" iMessage \"$(printf '\\377\\376\\200A\\303')\" \"caf$(printf '\\303\\251')\"");
        psi.ArgumentList.Add(Emu.Osascript);
        psi.ArgumentList.Add(SendScript);
        using var p = Process.Start(psi)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();

        Assert.That((p.ExitCode, stderr), Is.EqualTo((0, "")));
        var argv = Emu.Calls().Single().Argv;
        Assert.That(argv[1], Is.EqualTo(new byte[] { 0xFF, 0xFE, 0x80, 0x41, 0xC3 }));
        Assert.That(MessagesEmulator.Utf8(argv[2]), Is.EqualTo("café"));
    }

    [Test]
    public async Task NotUtf8Text_ShouldGoIntoTheAttributedBodyAsItsBytes()
    {
        Emu.Control(new { confirmDelayMs = 20, deliverDelayMs = 20 });
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" \"$1\" iMessage +12025550123 \"a$(printf '\\377')b\"");
        psi.ArgumentList.Add(Emu.Osascript);
        psi.ArgumentList.Add(SendScript);
        using var p = Process.Start(psi)!;
        Assert.That(await p.StandardError.ReadToEndAsync(), Is.EqualTo("LINEAGENT:SENDING\n"));
        await p.WaitForExitAsync();
        using var c = Emu.OpenChatDb();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT attributedBody FROM message";
        var blob = (byte[])cmd.ExecuteScalar()!;
        Assert.That(blob.AsSpan().IndexOf((ReadOnlySpan<byte>)[0x01, 0x2B, 0x03, (byte)'a', 0xFF, (byte)'b']), Is.GreaterThan(0));
    }

    /// <summary>Not a benchmark: reports the time of one recordOnly call and guards against a gross regression.</summary>
    [Test]
    public async Task RecordOnlyCall_ShouldBeQuick()
    {
        Emu.Control(new { recordOnly = true });
        var best = TimeSpan.MaxValue;
        for (var i = 0; i < 10; i++)
            best = TimeSpan.FromTicks(Math.Min(best.Ticks, (await TimedAsync(() => SendAsync("iMessage", R, "hi"))).Elapsed.Ticks));
        TestContext.Progress.WriteLine($"recordOnly send through the osascript wrapper: best of 10 = {best.TotalMilliseconds:0} ms");
        Assert.That(best, Is.LessThan(TimeSpan.FromSeconds(2)));
    }
}
