using System.Diagnostics;
using System.Text;
using LineAgent.Bridge.ChatDb;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Emulator;

/// <summary>The scripts as the emulator plays them with Messages: step errors, injected failures, hangs, restarts.</summary>
public sealed class EmulatorScriptTests() : EmulatorTest(26)
{
    private const string Sending = "LINEAGENT:SENDING\n";

    private static string AccountGuidPattern => "[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}";

    [Test]
    public async Task Status_ShouldListTheAccounts_AsTabSeparatedLines()
    {
        // Each account's id is a GUID of its own (Apple's dictionary: the id is the scriptUniqueId), the one -1728 names.
        var full = await StatusAsync();
        Assert.That((full.ExitCode, full.Stderr), Is.EqualTo((0, "")));
        Assert.That(full.Stdout, Does.Match($"^iMessage\t{AccountGuidPattern}\ttrue\tconnected\nSMS\t{AccountGuidPattern}\ttrue\tconnected\n$"));
        var ids = full.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[1]).ToList();
        Emu.Control(new { smsAccount = false });
        Assert.That((await StatusAsync()).Stdout, Is.EqualTo($"iMessage\t{ids[0]}\ttrue\tconnected\n"));
        Emu.Control(new { imessageSignedIn = false, rcsAccount = true });
        var three = (await StatusAsync()).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(three[..2], Is.EqualTo(new[] { $"iMessage\t{ids[0]}\tfalse\tdisconnected", $"SMS\t{ids[1]}\ttrue\tconnected" }));
        Assert.That(three[2], Does.Match($"^RCS\t{AccountGuidPattern}\ttrue\tconnected$"));
        Assert.That(three.Select(l => l.Split('\t')[1]).Distinct().Count(), Is.EqualTo(3), "one id per account");
    }

    [Test]
    public async Task Status_ShouldPrintNotRunning_AfterQuit_WithoutLaunchingMessages()
    {
        Emu.Quit();
        Assert.That(await StatusAsync(), Is.EqualTo(new ScriptRun(0, "not_running\n", "")));
        var state = Emu.State();
        Assert.That((state["running"]!.GetValue<bool>(), state["launches"]!.GetValue<long>()), Is.EqualTo((false, 0L)), "status does not launch it");

        // `tell application "Messages"` in send launches it.
        Emu.Control(new { launchDelayMs = 300, confirmDelayMs = 20, deliverDelayMs = 20 });
        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", R, "wakes Messages up"));
        Assert.That(run, Is.EqualTo(new ScriptRun(0, "", Sending)));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)), "launchDelayMs");
        state = Emu.State();
        Assert.That((state["running"]!.GetValue<bool>(), state["launches"]!.GetValue<long>()), Is.EqualTo((true, 1L)));
        Assert.That((await StatusAsync()).Stdout, Does.StartWith("iMessage\t"));

        Emu.Quit();
        Emu.Launch();
        Assert.That((await StatusAsync()).Stdout, Does.StartWith("iMessage\t"), "launched by the user");
        Assert.That(Emu.State()["launches"]!.GetValue<long>(), Is.EqualTo(1), "a user launch is not counted");
    }

    [Test]
    public async Task NoSmsAccount_ShouldFailTheAccountStep_WithInvalidIndex()
    {
        Emu.Control(new { smsAccount = false });
        Assert.That(await SendAsync("SMS", R, "hi"), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(SendScript, "account SMS: Messages got an error: Can\u2019t get account 1 whose service type = SMS. Invalid index. (-1719)", 1001))));
        Assert.That(await SendAsync("RCS", R, "hi"), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(SendScript, "account RCS: Messages got an error: Can\u2019t get account 1 whose service type = RCS. Invalid index. (-1719)", 1001))),
            "no RCS account by default");
        Emu.Control(new { imessageSignedIn = false });
        Assert.That((await SendAsync("iMessage", R, "hi")).Stderr, Does.EndWith("Invalid index. (-1719) (1001)\n"));
        Assert.That(LastRowId(), Is.Zero, "refused calls write no rows");
    }

    [Test]
    public async Task ArgumentChecks_ShouldRaiseUsageRaw_AndUnknownServicesInTheAccountStep()
    {
        Assert.That(await SendAsync("iMessage", R), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(SendScript, "usage: send.applescript <iMessage|SMS|RCS> <recipient> <text>", -1700))));
        Assert.That((await SendAsync("iMessage", R, "a", "b")).ExitCode, Is.EqualTo(1));
        Assert.That((await SendAsync()).ExitCode, Is.EqualTo(1));
        Assert.That(await SendAsync("any", R, "hi"), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(SendScript, "account any: Can\u2019t make \"any\" into type constant. (-1700)", 1001))));
        Assert.That((await SendAsync("imessage", R, "hi")).Stderr, Does.EndWith("(-1700) (1001)\n"), "service names are case-sensitive");
        Assert.That(LastRowId(), Is.Zero);
    }

    [Test]
    public async Task Unresolvable_ShouldFailTheParticipantStep_With1728()
    {
        Emu.Control(new { unresolvable = new[] { "+12025550999" } });
        var run = await SendAsync("iMessage", "+12025550999", "hi");
        Assert.That(run.ExitCode, Is.EqualTo(1));
        Assert.That(run.Stderr, Does.Match(
            $"^{Escape(SendScript)}: execution error: participant \\+12025550999: Messages got an error: Can\u2019t get participant \"\\+12025550999\" " +
            $"of account id \"{AccountGuidPattern}\"\\. \\(-1728\\) \\(1002\\)\n$"));
        Assert.That((await SendAsync("iMessage", R, "others are fine")).ExitCode, Is.Zero);
    }

    [TestCase("account", 1001, false)]
    [TestCase("participant", 1002, false)]
    [TestCase("send", 1003, true)]
    public async Task FailWith_ShouldFailAtFailStep_WithTheRawNumberInsideTheStepNumber(string step, int number, bool reachedSend)
    {
        Emu.Control(new { failWith = -1743, failStep = step });
        var label = step switch { "account" => "account iMessage", "participant" => $"participant {R}", _ => "send" };
        Assert.That(await SendAsync("iMessage", R, "nope"), Is.EqualTo(new ScriptRun(1, "",
            (reachedSend ? Sending : "") + ExecutionError(SendScript, $"{label}: Not authorized to send Apple events to Messages. (-1743)", number))));
        Assert.That(LastRowId(), Is.Zero, "an injected failure writes no row");
    }

    [TestCase(-1728, "Messages got an error: Can\u2019t get account 1 whose service type = iMessage.")]
    [TestCase(-1719, "Messages got an error: Can\u2019t get account 1 whose service type = iMessage. Invalid index.")]
    [TestCase(-1712, "Messages got an error: AppleEvent timed out.")]
    [TestCase(-1700, "Can\u2019t make \"iMessage\" into type constant.")]
    [TestCase(-600, "Messages got an error: Application isn\u2019t running.")]
    [TestCase(-609, "Messages got an error: Connection is invalid.")]
    [TestCase(-1234, "Messages got an error: An error of type -1234 has occurred.")]
    public async Task FailWith_ShouldUseMessagesText_ForEachNumber(int code, string text)
    {
        Emu.Control(new { failWith = code });
        Assert.That((await SendAsync("iMessage", R, "nope")).Stderr,
            Is.EqualTo(ExecutionError(SendScript, $"account iMessage: {text} ({code})", 1001)));
    }

    [Test]
    public async Task FailWith_ShouldApplyToStatusRaw_AndFollowFailOnAndFailMessage()
    {
        Emu.Control(new { failWith = -1743, failMessage = "custom text for {recipient} by {service}." });
        Assert.That((await SendAsync("iMessage", R, "nope")).Stderr,
            Is.EqualTo(ExecutionError(SendScript, $"account iMessage: custom text for {R} by iMessage. (-1743)", 1001)));
        Assert.That(await StatusAsync(), Is.EqualTo(new ScriptRun(1, "", ExecutionError(StatusScript, "custom text for  by .", -1743))),
            "status: raw, no step");

        Emu.Control(new { failWith = -1728, failOn = new[] { "send" } });
        Assert.That((await StatusAsync()).ExitCode, Is.Zero);
        Assert.That((await SendAsync("iMessage", R, "nope")).ExitCode, Is.EqualTo(1));

        Emu.Control(new { failWith = -1728, failOn = new[] { "status.applescript" } });
        Assert.That(await StatusAsync(), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(StatusScript, "Messages got an error: Can\u2019t get account 1. Invalid index.", -1728))));
        Assert.That((await SendAsync("iMessage", R, "fine")).ExitCode, Is.Zero);

        Emu.Control(new { failWith = -1712, failOn = new[] { "restart-messages" } });
        Assert.That(await Emu.ExecAsync(RestartScript), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(RestartScript, "Messages got an error: AppleEvent timed out.", -1712))));
    }

    [Test]
    public async Task FailCount_ShouldFailOnlyTheFirstCalls_AndRestartWhenControlIsRewrittenOrReset()
    {
        var control = new { failWith = -1712, failCount = 2, confirmDelayMs = 20, deliverDelayMs = 20 };
        Emu.Control(control);
        Assert.That((await SendAsync("iMessage", R, "try 1")).ExitCode, Is.EqualTo(1));
        Assert.That((await SendAsync("iMessage", R, "try 2")).ExitCode, Is.EqualTo(1));
        Assert.That(await SendAsync("iMessage", R, "try 3"), Is.EqualTo(new ScriptRun(0, "", Sending)));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM message"), Is.EqualTo("1"), "only the successful try wrote a row");
        Assert.That((await SendAsync("iMessage", R, "try 4")).ExitCode, Is.Zero);

        Emu.Control(control);
        Assert.That((await SendAsync("iMessage", R, "again")).ExitCode, Is.EqualTo(1), "rewriting control.json restarts the count");
        Emu.Run("reset");
        Assert.That((await SendAsync("iMessage", R, "again")).ExitCode, Is.EqualTo(1), "reset restarts the count (1)");
        Assert.That((await SendAsync("iMessage", R, "again")).ExitCode, Is.EqualTo(1), "reset restarts the count (2)");
        Assert.That((await SendAsync("iMessage", R, "again")).ExitCode, Is.Zero, "(3) passes");

        Emu.Control(new { failWith = -1712, failCount = 0 });
        Assert.That((await SendAsync("iMessage", R, "zero")).ExitCode, Is.Zero, "failCount 0 never fails");
    }

    [Test]
    public async Task HangBeforeSend_ShouldHangInTheParticipantStep_UntilKilled_AndHangCountLimitsIt()
    {
        Emu.Control(new { hang = "before_send", hangCount = 1, confirmDelayMs = 20, deliverDelayMs = 20 });
        using var hung = Emu.Start(SendScript, "iMessage", R, "hang before");
        await Eventually.TrueAsync(() => Counter("hang") == 1, "the hang to start");
        Assert.That(hung.WaitForExit(500), Is.False, "still hanging");
        Assert.That(LastRowId(), Is.Zero, "nothing sent");
        hung.Kill(entireProcessTree: true);
        await hung.WaitForExitAsync();
        Assert.That(await hung.StandardError.ReadToEndAsync(), Is.Empty, "no marker: killed before send");

        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", R, "after the hang"));
        Assert.That(run, Is.EqualTo(new ScriptRun(0, "", Sending)), "hangCount 1: the next call does not hang");
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
    }

    [Test]
    public async Task HangMaxMs_ShouldEndTheHangWith1712_InsideTheStep()
    {
        Emu.Control(new { hang = "before_send", hangMaxMs = 300 });
        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", R, "times out"));
        Assert.That(run, Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(SendScript, $"participant {R}: Messages got an error: AppleEvent timed out. (-1712)", 1002))));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)));

        Emu.Control(new { hang = "after_send", hangMaxMs = 300, confirmDelayMs = 20, deliverDelayMs = 20 });
        run = await SendAsync("iMessage", R, "sent, then timed out");
        Assert.That(run, Is.EqualTo(new ScriptRun(1, "", Sending + ExecutionError(SendScript, "send: Messages got an error: AppleEvent timed out. (-1712)", 1003))));
        await WaitForAsync($"SELECT is_sent, is_delivered FROM message WHERE ROWID={LastRowId()}", "1|1", "it went out all the same");
    }

    [Test]
    public async Task HangWithoutHangMaxMs_ShouldEndAtTheScriptsOwnWithTimeout()
    {
        var script = Path.Combine(ScriptsDir, "send.applescript");
        File.WriteAllText(script, "on run argv\n\twith timeout of 1 seconds\n\t\t-- ...\n\tend timeout\nend run\n");
        Emu.Control(new { hang = "before_send" });
        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", R, "times out"));
        Assert.That(run.Stderr, Does.EndWith("AppleEvent timed out. (-1712) (1002)\n"));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)).And.LessThan(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public async Task RestartMessages_ShouldEndHungCallsWith609_AndPrintTheConnectionStatus()
    {
        Emu.Control(new { hang = "before_send" });
        using var hung = Emu.Start(SendScript, "iMessage", R, "stuck");
        var stdout = hung.StandardOutput.ReadToEndAsync();
        var stderr = hung.StandardError.ReadToEndAsync();
        await Eventually.TrueAsync(() => Counter("hang") == 1, "the hang to start");

        Assert.That(await Emu.ExecAsync(RestartScript), Is.EqualTo(new ScriptRun(0, "connected\n", "")));

        Assert.That(await ExitsWithinAsync(hung, TimeSpan.FromSeconds(10)), Is.True, "the hung call ends");
        Assert.That((hung.ExitCode, await stdout, await stderr), Is.EqualTo((1, "",
            ExecutionError(SendScript, $"participant {R}: Messages got an error: Connection is invalid. (-609)", 1002))));
        Assert.That(Emu.State()["restarts"]!.GetValue<long>(), Is.EqualTo(1));

        // A hung status ends the same way (raw: status has no steps); restart with a signed-out iMessage.
        Emu.Control(new { hang = "status", imessageSignedIn = false, reconnectDelayMs = 200 });
        Emu.Run("reset"); // counters.hang still shows the first hang until a call takes the new control.json
        using var status = Emu.Start(StatusScript);
        var statusErr = status.StandardError.ReadToEndAsync();
        await Eventually.TrueAsync(() => Counter("hang") == 1, "the status hang to start");
        var (restart, elapsed) = await TimedAsync(() => Emu.ExecAsync(RestartScript));
        Assert.That(restart, Is.EqualTo(new ScriptRun(0, "disconnected\n", "")));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(200)), "reconnectDelayMs");
        Assert.That(await ExitsWithinAsync(status, TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(await statusErr, Is.EqualTo(ExecutionError(StatusScript, "Messages got an error: Connection is invalid.", -609)));
        Assert.That(Emu.State()["restarts"]!.GetValue<long>(), Is.EqualTo(2));
    }

    [Test]
    public async Task HangAfterSend_ShouldKeepTheTimelineGoing_WhenTheCallersTreeIsKilled()
    {
        Emu.Control(new { hang = "after_send", confirmDelayMs = 300, deliverDelayMs = 100 });
        using var hung = Emu.Start(SendScript, "iMessage", R, "hang after");
        var stderr = hung.StandardError.ReadToEndAsync();
        await Eventually.TrueAsync(() => Counter("hang") == 1, "the hang to start (after the row and its timeline)");
        var id = LastRowId();
        Assert.That(id, Is.EqualTo(1));

        hung.Kill(entireProcessTree: true); // what the agent's hard time-out does
        await hung.WaitForExitAsync();

        Assert.That(await stderr.WaitAsync(TimeSpan.FromSeconds(5)), Is.EqualTo(Sending), "the pipes closed with the process: the timeline holds none");
        await WaitForAsync($"SELECT is_sent, is_delivered FROM message WHERE ROWID={id}", "1|1", "sent and delivered after the kill");
        AssertNoBackgroundErrors();
    }

    [Test]
    public async Task HangStatus_ShouldHangWithoutOutput()
    {
        Emu.Control(new { hang = "status" });
        using var hung = Emu.Start(StatusScript);
        var stdout = hung.StandardOutput.ReadToEndAsync();
        await Eventually.TrueAsync(() => Counter("hang") == 1, "the hang to start");
        Assert.That(hung.WaitForExit(500), Is.False);
        hung.Kill(entireProcessTree: true);
        Assert.That(await stdout, Is.Empty);
        Assert.That((await SendAsync("iMessage", R, "send does not hang")).ExitCode, Is.Zero);
    }

    [Test]
    public async Task Send_ShouldReleaseTheCallersPipesAtOnce_WhileTheTimelineRuns()
    {
        Emu.Control(new { confirmDelayMs = 8000, deliverDelayMs = 50 });
        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", "+12025550999", "pipes"));
        Assert.That(run, Is.EqualTo(new ScriptRun(0, "", Sending)));
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(4)), "stdout/stderr reached EOF without waiting for the timeline");
        Assert.That(Emu.Query("SELECT is_sent FROM message"), Is.EqualTo("0"), "not sent yet: the caller did not wait for it");
        await WaitForAsync("SELECT is_sent, is_delivered FROM message", "1|1", "the late confirmation still happens");
    }

    [Test]
    public async Task SendDelayMs_ShouldDelayTheRow_AfterTheMarker()
    {
        Emu.Control(new { sendDelayMs = 400, confirmDelayMs = 20, deliverDelayMs = 20 });
        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", R, "slow"));
        Assert.That(run, Is.EqualTo(new ScriptRun(0, "", Sending)));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(400)));
    }

    [Test]
    public async Task ConsentPrompt_ShouldHoldOnlyTheFirstCalls_AfterControlIsWritten()
    {
        Emu.Control(new { consentPromptMs = 3000 });
        var (first, firstTook) = await TimedAsync(StatusAsync);
        var (second, secondTook) = await TimedAsync(StatusAsync);
        Assert.That((first.ExitCode, second.ExitCode), Is.EqualTo((0, 0)));
        Assert.That(firstTook, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(3000)));
        Assert.That(secondTook, Is.LessThan(firstTook - TimeSpan.FromMilliseconds(1500)), "consentCount defaults to 1");

        Emu.Control(new { consentPromptMs = 600, consentCount = 2, confirmDelayMs = 20, deliverDelayMs = 20 });
        Assert.That((await TimedAsync(() => SendAsync("iMessage", R, "1"))).Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(600)));
        Assert.That((await TimedAsync(() => SendAsync("iMessage", R, "2"))).Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(600)));
        Assert.That(Counter("consent"), Is.EqualTo(2));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM message"), Is.EqualTo("2"), "then they proceed normally");
    }

    [Test]
    public async Task AttributedBodyFile_ShouldBeWrittenVerbatim_LikeTheRealDoubledBlob()
    {
        var blob = Fixtures.Path("chatdb/attributed-body/CheckThisOut_doubled.bin");
        Emu.Control(new { attributedBodyFile = blob, confirmDelayMs = 20, deliverDelayMs = 20 });
        Assert.That((await SendAsync("iMessage", R, "Check this out!")).ExitCode, Is.Zero);
        using (var c = Emu.OpenChatDb())
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT attributedBody FROM message";
            var written = (byte[])cmd.ExecuteScalar()!;
            Assert.That(written, Is.EqualTo(File.ReadAllBytes(blob)));
            Assert.That(TypedStreamText.Decode(written), Is.EqualTo("Check this out!Check this out!"));
        }

        Emu.Control(new { doubleText = true, confirmDelayMs = 20, deliverDelayMs = 20 });
        await SendAsync("iMessage", R, "Twice ");
        Assert.That(Emu.Run("dump").Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1], Does.Contain("\"text\":\"Twice Twice \""));
    }

    [Test]
    public async Task UrlPreview_ShouldAddABalloonRow_RightAfterTheMessage()
    {
        Emu.Control(new { urlPreview = true, confirmDelayMs = 50, deliverDelayMs = 50 });
        Assert.That((await SendAsync("iMessage", R, "look: https://example.com/a?b=1 now")).ExitCode, Is.Zero);
        Assert.That(Emu.Query("SELECT ROWID, is_from_me, text IS NULL, COALESCE(balloon_bundle_id, ''), handle_id, " +
                              "(SELECT chat_id FROM chat_message_join WHERE message_id = m.ROWID) FROM message m ORDER BY ROWID"),
            Is.EqualTo("1|1|1||1|1\n2|1|1|com.apple.messages.URLBalloonProvider|1|1"));
        using (var c = Emu.OpenChatDb())
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT attributedBody FROM message ORDER BY ROWID";
            using var r = cmd.ExecuteReader();
            var texts = new List<string?>();
            while (r.Read())
                texts.Add(TypedStreamText.Decode((byte[])r.GetValue(0)));
            Assert.That(texts, Is.EqualTo(new[] { "look: https://example.com/a?b=1 now", "https://example.com/a?b=1" }));
        }
        await WaitForAsync("SELECT is_sent, is_delivered FROM message ORDER BY ROWID", "1|1\n1|1", "both rows follow the same timeline");

        await SendAsync("iMessage", R, "no link here");
        Assert.That(LastRowId(), Is.EqualTo(3), "no URL, no balloon row");
    }

    [Test]
    public async Task OtherScripts_RecordOnly_RequireScriptFile_AndABrokenControlFile()
    {
        var other = Path.Combine(ScriptsDir, "other.applescript");
        Assert.That(await Emu.ExecAsync(other, "x"), Is.EqualTo(new ScriptRun(1, "",
            ExecutionError(other, "Messages got an error: Can\u2019t get script \u201cother.applescript\u201d.", -1728))));

        Emu.Control(new { recordOnly = true });
        Assert.That(await SendAsync("iMessage", R, "recorded only"), Is.EqualTo(new ScriptRun(0, "", "")));
        Assert.That(LastRowId(), Is.Zero);

        Emu.Control(new { requireScriptFile = true });
        var missing = TempFile("missing/send.applescript");
        Assert.That(await Emu.ExecAsync(missing, "iMessage", R, "x"), Is.EqualTo(new ScriptRun(1, "", $"osascript: {missing}: No such file or directory (-43)\n")));

        File.WriteAllText(Path.Combine(Emu.Home, "control.json"), "{\"failWith\": ");
        var broken = await SendAsync("iMessage", R, "x");
        Assert.That(broken.ExitCode, Is.EqualTo(2));
        Assert.That(broken.Stderr, Does.StartWith("messages_emulator: control.json is not valid JSON"));
        File.Delete(Path.Combine(Emu.Home, "control.json"));
        Assert.That((await StatusAsync()).ExitCode, Is.Zero, "no control.json: defaults");

        File.Delete(Emu.ChatDb);
        Emu.Control(new { confirmDelayMs = 20 });
        var noDb = await SendAsync("iMessage", R, "x");
        Assert.That(noDb.ExitCode, Is.EqualTo(2));
        Assert.That(noDb.Stderr, Does.Match("^(LINEAGENT:SENDING\n)?messages_emulator: .*run `MessagesEmulator init` first\n$"));
    }

    [Test]
    public async Task Calls_ShouldRecordEveryScriptCall_WithArgvPidAndTime()
    {
        await StatusAsync();
        await Emu.ExecAsync(RestartScript);
        Emu.Control(new { recordOnly = true });
        await SendAsync("iMessage", R, "x");
        var records = Emu.CallRecords();
        Assert.That(records.Select(r => r["script"]!.GetValue<string>()), Is.EqualTo(new[] { "status.applescript", "restart-messages.applescript", "send.applescript" }));
        var send = records[^1];
        Assert.That(send["path"]!.GetValue<string>(), Is.EqualTo(SendScript));
        Assert.That(send["argc"]!.GetValue<int>(), Is.EqualTo(3));
        Assert.That(send["pid"]!.GetValue<int>(), Is.GreaterThan(0));
        Assert.That(send["t"]!.GetValue<double>(), Is.EqualTo(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0).Within(60));
        Assert.That(Emu.Calls()[^1].Argv.Select(MessagesEmulator.Utf8), Is.EqualTo(new[] { "iMessage", R, "x" }));
        Assert.That(records[0]["argc"]!.GetValue<int>(), Is.Zero);
        Assert.That(Emu.Run("calls").Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1], Does.Contain($"\"argv\":[\"iMessage\",\"{R}\",\"x\"]"));
    }

    private static async Task<bool> ExitsWithinAsync(Process process, TimeSpan timeout)
    {
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private static string Escape(string s) => System.Text.RegularExpressions.Regex.Escape(s);
}
