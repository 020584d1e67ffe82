using System.Diagnostics;
using LineAgent.Bridge.ChatDb;

namespace LineAgent.Tests.Emulator;

/// <summary>What the emulator writes into chat.db, on both of Apple's schemas.</summary>
[TestFixture(15)]
[TestFixture(26)]
public sealed class EmulatorSchemaTests(int macOs) : EmulatorTest(macOs)
{
    private string Prefix => MacOs == 26 ? "any" : "iMessage";
    private string SmsPrefix => MacOs == 26 ? "any" : "SMS";

    private string Text(long rowId)
    {
        using var c = Emu.OpenChatDb();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"SELECT attributedBody FROM message WHERE ROWID = {rowId}";
        return TypedStreamText.Decode(cmd.ExecuteScalar() as byte[]) ?? "<no text>";
    }

    [Test]
    public void Init_ShouldCreateAWalChatDbFromApplesSchema_AndBeIdempotent()
    {
        Assert.That(Emu.Query("PRAGMA journal_mode"), Is.EqualTo("wal"));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN " +
            "('message','handle','chat','chat_message_join','chat_handle_join','attachment','message_attachment_join')"), Is.EqualTo("7"));
        if (MacOs == 26)
            Assert.That(Emu.Query("SELECT (SELECT COUNT(*) FROM pragma_table_info('chat') WHERE name='is_pending_review'), " +
                "(SELECT COUNT(*) FROM pragma_table_info('chat_message_join') WHERE name='index_state')"), Is.EqualTo("1|1"));
        else
            Assert.That(Emu.Query("SELECT COUNT(*) FROM sqlite_master WHERE name='chat_service'"), Is.EqualTo("0"));
        Assert.That(Emu.State()["schema"]!.GetValue<string>(), Is.EqualTo(MacOs.ToString()));

        var other = MacOs == 15 ? "26" : "15";
        Assert.That(Emu.Run("init", "--schema", MacOs.ToString()), Is.Empty, "same settings again: unchanged");
        var refused = Assert.Throws<InvalidOperationException>(() => Emu.Run("init", "--schema", other))!;
        Assert.That(refused.Message, Does.Contain("(2)").And.Contain("--force"));
        Assert.That(Emu.Run("init", "--schema", other, "--force").Trim(), Is.EqualTo(Emu.ChatDb));
        Assert.That(Emu.State()["schema"]!.GetValue<string>(), Is.EqualTo(other));
        Emu.Run("init", "--schema", MacOs.ToString(), "--me", "me@example.com", "--sms-number", "+15550001111", "--force");
        Assert.That(Emu.State()["me"]!.GetValue<string>(), Is.EqualTo("me@example.com"));
    }

    [Test]
    public async Task Send_ShouldWriteTheRowLikeMessages_ThenMarkItSentAndDelivered()
    {
        Emu.Control(new { confirmDelayMs = 8000, deliverDelayMs = 100 });
        var before = ChatDbNow();
        var (run, elapsed) = await TimedAsync(() => SendAsync("iMessage", R, "Hello from the emulator 😀"));
        var after = ChatDbNow();

        Assert.That(run, Is.EqualTo(new Support.ScriptRun(0, "", "LINEAGENT:SENDING\n")));
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(4)), "the timeline must not hold the caller");
        var id = LastRowId();
        Assert.That(Emu.Query("SELECT is_from_me, error, is_sent, is_finished, is_delivered, text, service, account, date_read, date_delivered, " +
            $"item_type, associated_message_type, is_read, cache_roomnames, part_count FROM message WHERE ROWID={id}"),
            Is.EqualTo("1|0|0|0|0||iMessage|E:me@icloud.com|0|0|0|0|0||1"));
        Assert.That(Text(id), Is.EqualTo("Hello from the emulator 😀"));
        Assert.That(Emu.Query($"SELECT guid FROM message WHERE ROWID={id}"),
            Does.Match("^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$"));
        Assert.That(Emu.Query($"SELECT account_guid FROM message WHERE ROWID={id}"), Does.Match("^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$"));
        Assert.That(long.Parse(Emu.Query($"SELECT date FROM message WHERE ROWID={id}")), Is.InRange(before, after), "ns since 2001");
        Assert.That(Emu.Query($"SELECT h.id, h.service, h.country, h.uncanonicalized_id FROM message m JOIN handle h ON h.ROWID=m.handle_id WHERE m.ROWID={id}"),
            Is.EqualTo($"{R}|iMessage|us|"));
        Assert.That(Emu.Query("SELECT c.guid, c.style, c.chat_identifier, c.service_name FROM chat_message_join j JOIN chat c ON c.ROWID=j.chat_id " +
            $"WHERE j.message_id={id}"), Is.EqualTo($"{Prefix};-;{R}|45|{R}|iMessage"));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM chat_handle_join j JOIN chat c ON c.ROWID=j.chat_id JOIN handle h ON h.ROWID=j.handle_id " +
            $"WHERE c.chat_identifier='{R}' AND h.id='{R}' AND h.service='iMessage'"), Is.EqualTo("1"));
        Assert.That(Emu.Query($"SELECT j.message_date = m.date FROM chat_message_join j JOIN message m ON m.ROWID=j.message_id WHERE m.ROWID={id}"), Is.EqualTo("1"));

        await WaitForAsync($"SELECT is_sent, is_finished, error FROM message WHERE ROWID={id}", "1|1|0", "sent");
        await WaitForAsync($"SELECT is_delivered, date_delivered > date FROM message WHERE ROWID={id}", "1|1", "delivered");
        Assert.That(Emu.Query($"SELECT date_read, is_read FROM message WHERE ROWID={id}"), Is.EqualTo("0|0"), "never read without readDelayMs");

        Emu.Control(new { confirmDelayMs = 50, deliverDelayMs = 50 });
        Assert.That((await SendAsync("iMessage", R, "second")).ExitCode, Is.Zero);
        Assert.That(Emu.Query($"SELECT (SELECT COUNT(*) FROM handle WHERE id='{R}' AND service='iMessage'), (SELECT COUNT(*) FROM chat WHERE chat_identifier='{R}')"),
            Is.EqualTo("1|1"), "the second send reuses handle and chat");
        await WaitForAsync($"SELECT is_delivered FROM message WHERE ROWID={LastRowId()}", "1", "second delivered");
        AssertNoBackgroundErrors();
    }

    [Test]
    public async Task ReadReceipts_ShouldComeOnlyFromReadBy_AfterReadDelayMs()
    {
        Emu.Control(new { confirmDelayMs = 50, deliverDelayMs = 50, readDelayMs = 100, readBy = new[] { "+12025550111" } });
        await SendAsync("iMessage", "+12025550111", "read me");
        var read = LastRowId();
        await SendAsync("iMessage", "+12025550222", "will not be read");
        var unread = LastRowId();
        await WaitForAsync($"SELECT is_delivered, date_read >= date_delivered, is_read FROM message WHERE ROWID={read}", "1|1|1", "read");
        await WaitForAsync($"SELECT is_delivered FROM message WHERE ROWID={unread}", "1", "unlisted delivered");
        Assert.That(Emu.Query($"SELECT date_read, is_read FROM message WHERE ROWID={unread}"), Is.EqualTo("0|0"));

        Emu.Control(new { confirmDelayMs = 50, deliverDelayMs = 50, readDelayMs = 50 });
        await SendAsync("SMS", "+12025550222", "read without readBy");
        await WaitForAsync($"SELECT is_read, date_read > 0 FROM message WHERE ROWID={LastRowId()}", "1|1", "read by anyone without readBy");
    }

    [Test]
    public async Task NonImessageAndSmsUndeliverable_ShouldGetError22_AndNeverBeDelivered()
    {
        Emu.Control(new { confirmDelayMs = 50, deliverDelayMs = 50, nonImessage = new[] { "+12025550333" }, smsUndeliverable = new[] { "+12025550444" } });
        Assert.That(await SendAsync("iMessage", "+12025550333", "no iMessage here"), Is.EqualTo(new Support.ScriptRun(0, "", "LINEAGENT:SENDING\n")));
        var id = LastRowId();
        await WaitForAsync($"SELECT error, is_finished, is_sent FROM message WHERE ROWID={id}", "22|1|0", "error 22");
        Assert.That(Emu.Query("SELECT value FROM kvtable WHERE key='lastFailedMessageRowID'"), Is.EqualTo(id.ToString()), "Apple's trigger ran");

        await SendAsync("SMS", "+12025550333", "SMS is fine");
        var sms = LastRowId();
        await SendAsync("SMS", "+12025550444", "SMS cannot reach it");
        var undeliverable = LastRowId();
        await WaitForAsync($"SELECT error, is_sent, is_delivered FROM message WHERE ROWID={sms}", "0|1|1", "SMS to a non-iMessage number delivered");
        await WaitForAsync($"SELECT error, is_finished, is_sent FROM message WHERE ROWID={undeliverable}", "22|1|0", "smsUndeliverable");
        Assert.That(Emu.Query($"SELECT is_delivered, date_delivered FROM message WHERE ROWID IN ({id}, {undeliverable})"), Is.EqualTo("0|0\n0|0"));
    }

    [Test]
    public async Task SmsAndRcs_ShouldUseThePhoneAccount_AndTheirOwnChats()
    {
        Emu.Control(new { confirmDelayMs = 50, deliverDelayMs = 50, rcsAccount = true });
        Assert.That((await SendAsync("SMS", "+12025550444", "by SMS")).ExitCode, Is.Zero);
        var id = LastRowId();
        Assert.That(Emu.Query("SELECT m.service, m.account, h.id, h.service, c.guid FROM message m JOIN handle h ON h.ROWID=m.handle_id " +
            $"JOIN chat_message_join j ON j.message_id=m.ROWID JOIN chat c ON c.ROWID=j.chat_id WHERE m.ROWID={id}"),
            Is.EqualTo($"SMS|P:+15550000000|+12025550444|SMS|{SmsPrefix};-;+12025550444"));
        await WaitForAsync($"SELECT is_sent, is_finished, is_delivered FROM message WHERE ROWID={id}", "1|1|1", "SMS delivered");
        Assert.That((await SendAsync("RCS", "+12025550444", "by RCS")).ExitCode, Is.Zero);
        Assert.That(Emu.Query($"SELECT service, account FROM message WHERE ROWID={LastRowId()}"), Is.EqualTo("RCS|P:+15550000000"));
        Assert.That((await SendAsync("iMessage", "user@example.com", "to an email")).ExitCode, Is.Zero);
        Assert.That(Emu.Query($"SELECT h.id, h.country FROM message m JOIN handle h ON h.ROWID=m.handle_id WHERE m.ROWID={LastRowId()}"),
            Is.EqualTo("user@example.com|"), "an email handle has no country");
    }

    [Test]
    public async Task GhostRow_ShouldBeEmptyUnjoinedSms_AndNeverUpdated()
    {
        Emu.Control(new { ghost = true, confirmDelayMs = 50, deliverDelayMs = 50 });
        Assert.That(await SendAsync("iMessage", "+12025550555", "vanishes"), Is.EqualTo(new Support.ScriptRun(0, "", "LINEAGENT:SENDING\n")));
        var id = LastRowId();
        Assert.That(Emu.Query($"SELECT text = '', attributedBody IS NULL, service, is_from_me, (SELECT COUNT(*) FROM chat_message_join WHERE message_id={id}) " +
            $"FROM message WHERE ROWID={id}"), Is.EqualTo("1|1|SMS|1|0"));
        await Task.Delay(400);
        Assert.That(Emu.Query($"SELECT is_sent, is_finished, is_delivered, error, date_delivered FROM message WHERE ROWID={id}"), Is.EqualTo("0|0|0|0|0"));
    }

    [Test]
    public async Task Incoming_ShouldWriteAFinishedInboundRow_AndTakeOnlyTrailingOptions()
    {
        var id = Emu.Incoming("+12025550666", "a reply ✅");
        Assert.That(id, Is.EqualTo(LastRowId()));
        Assert.That(Emu.Query("SELECT m.is_from_me, m.is_finished, m.is_sent, m.is_delivered, m.error, m.text, m.service, h.id, c.guid FROM message m " +
            $"JOIN handle h ON h.ROWID=m.handle_id JOIN chat_message_join j ON j.message_id=m.ROWID JOIN chat c ON c.ROWID=j.chat_id WHERE m.ROWID={id}"),
            Is.EqualTo($"0|1|0|1|0||iMessage|+12025550666|{Prefix};-;+12025550666"));
        Assert.That(Text(id), Is.EqualTo("a reply ✅"));

        id = long.Parse(Emu.Run("incoming", "+12025550666", "--not an option", "--service", "SMS"));
        Assert.That((Emu.Query($"SELECT service, account FROM message WHERE ROWID={id}"), Text(id)), Is.EqualTo(("SMS|P:+15550000000", "--not an option")));
        id = long.Parse(Emu.Run("incoming", "+12025550666", "--", "--service", "SMS", "--guid", "11111111-2222-3333-4444-555555555555"));
        Assert.That((Emu.Query($"SELECT service, guid FROM message WHERE ROWID={id}"), Text(id)),
            Is.EqualTo(("SMS|11111111-2222-3333-4444-555555555555", "--")));
        id = long.Parse(Emu.Run("incoming", "+12025550666", "--service"));
        Assert.That((Emu.Query($"SELECT service FROM message WHERE ROWID={id}"), Text(id)), Is.EqualTo(("iMessage", "--service")));
        Assert.Throws<InvalidOperationException>(() => Emu.Run("incoming", "+12025550666"), "no text: usage error");
        Assert.Throws<InvalidOperationException>(() => Emu.Run("incoming", "--service", "SMS", "+12025550666", "hi"), "options only trail");
        Assert.Throws<InvalidOperationException>(() => Emu.Run("incoming", "+12025550666", "hi", "--service", "Fax"));
    }

    [Test]
    public void IncomingWithAnOlderDate_ShouldGetTheNextRowId_AsICloudBackfillDoes()
    {
        var recent = Emu.Incoming("+12025550666", "recent");
        var old = DateTimeOffset.UtcNow.AddDays(-30);
        var backfilled = long.Parse(Emu.Run("incoming", "+12025550666", "STOP", "--date", old.ToString("O")));
        var unix = long.Parse(Emu.Run("incoming", "+12025550666", "older still", "--date", "1700000000"));

        Assert.That(backfilled, Is.GreaterThan(recent));
        Assert.That(unix, Is.GreaterThan(backfilled));
        var dates = Emu.Query($"SELECT date FROM message WHERE ROWID IN ({recent}, {backfilled}, {unix}) ORDER BY ROWID").Split('\n').Select(long.Parse).ToArray();
        Assert.That(dates[1], Is.LessThan(dates[0]), "the back-filled row is older than the row before it");
        Assert.That(dates[1], Is.EqualTo(MessagesEmulation.ChatDbDates.ToAppleNs(old)).Within(1000));
        Assert.That(dates[2], Is.EqualTo((1700000000L - 978307200L) * 1_000_000_000L));
        Assert.That(Emu.Query($"SELECT message_date FROM chat_message_join WHERE message_id={backfilled}"), Is.EqualTo(dates[1].ToString()));
    }

    [Test]
    public async Task Rebuild_ShouldLowerMaxRowId_KeepTheLastRows_AndReplaceTheFile()
    {
        Emu.Control(new { confirmDelayMs = 20, deliverDelayMs = 20 });
        for (var i = 0; i < 3; i++)
            Emu.Incoming("+12025550777", $"reply {i}");
        await SendAsync("iMessage", "+12025550777", "the last one");
        var last = LastRowId();
        await WaitForAsync($"SELECT is_delivered FROM message WHERE ROWID={last}", "1", "delivered before the rebuild");
        var guids = Emu.Query("SELECT guid FROM message ORDER BY ROWID DESC LIMIT 2").Split('\n').Reverse().ToArray();
        var inode = Inode(Emu.ChatDb);

        var max = Emu.Rebuild(keep: 2);

        Assert.That(max, Is.EqualTo(2));
        Assert.That(LastRowId(), Is.EqualTo(2));
        Assert.That(Inode(Emu.ChatDb), Is.Not.EqualTo(inode), "a new file was renamed over chat.db");
        Assert.That(Emu.Query("SELECT guid FROM message ORDER BY ROWID").Split('\n'), Is.EqualTo(guids), "guids kept, renumbered from 1");
        Assert.That(Text(1), Is.EqualTo("reply 2"));
        Assert.That(Text(2), Is.EqualTo("the last one"));
        Assert.That(Emu.Query("SELECT is_from_me, is_delivered FROM message WHERE ROWID = 2"), Is.EqualTo("1|1"));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM chat_message_join j JOIN message m ON m.ROWID = j.message_id AND j.message_date = m.date"), Is.EqualTo("2"));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM handle WHERE id = '+12025550777'"), Is.EqualTo("1"), "handles kept");
        Assert.That(Emu.Query("PRAGMA journal_mode"), Is.EqualTo("wal"));
        Assert.That(Emu.Query("PRAGMA integrity_check"), Is.EqualTo("ok"));

        Assert.That(Emu.Incoming("+12025550777", "after the rebuild"), Is.EqualTo(3));
        Assert.That(Emu.Run("rebuild").Trim(), Is.EqualTo("0"), "default: keep no messages");
        Assert.That(LastRowId(), Is.Zero);
        Assert.That(Emu.Query("SELECT COUNT(*) FROM chat"), Is.Not.EqualTo("0"), "chats kept");
    }

    [Test]
    public async Task ConcurrentSends_ShouldAllBeWritten_WithOneHandlePerAddress()
    {
        Emu.Control(new { confirmDelayMs = 100, deliverDelayMs = 100, readDelayMs = 50, rcsAccount = true });
        string[] texts = ["quote \" and \\ backslash", "new\nline\r\n\ttab", "😀👨‍👩‍👧‍👦🇺🇸", "\u200fRTL\u202e mark", "\ufffc", "",
            new string('é', 5000), new string('x', 10000), "' ; DROP TABLE message; --", "$(touch /tmp/x) `id`", "日本語 עברית", "end"];
        string[] recipients = ["+12025550701", "+12025550702", "friend@example.com"];
        string[] services = ["iMessage", "SMS", "RCS"];
        var jobs = texts.Select((t, i) => (Service: services[i % 3], To: recipients[i % 3], Text: t)).ToList();

        var runs = await Task.WhenAll(jobs.Select(j => SendAsync(j.Service, j.To, j.Text)));

        Assert.That(runs, Has.All.EqualTo(new Support.ScriptRun(0, "", "LINEAGENT:SENDING\n")));
        await WaitForAsync("SELECT COUNT(*) FROM message WHERE is_sent = 1 AND is_delivered = 1 AND is_read = 1", jobs.Count.ToString(), "all sent, delivered, read");
        using var c = Emu.OpenChatDb();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT m.service, h.id, m.attributedBody, (SELECT COUNT(*) FROM chat_message_join j WHERE j.message_id = m.ROWID) " +
                          "FROM message m JOIN handle h ON h.ROWID = m.handle_id";
        var rows = new List<(string, string, string)>();
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                rows.Add((r.GetString(0), r.GetString(1), TypedStreamText.Decode((byte[])r.GetValue(2))!));
                Assert.That(r.GetInt64(3), Is.EqualTo(1));
            }
        Assert.That(rows, Is.EquivalentTo(jobs.Select(j => (j.Service, j.To, j.Text))));
        Assert.That(Emu.Query("SELECT COUNT(*) FROM (SELECT id, service FROM handle GROUP BY 1, 2 HAVING COUNT(*) > 1)"), Is.EqualTo("0"));
        Assert.That(Emu.Query("PRAGMA integrity_check"), Is.EqualTo("ok"));
        AssertNoBackgroundErrors();
    }

    [Test]
    public async Task Dump_ShouldPrintOneJsonLinePerMessage_WithDecodedText()
    {
        Emu.Control(new { recordOnly = false, confirmDelayMs = 20, deliverDelayMs = 20 });
        await SendAsync("iMessage", R, "hello");
        Emu.Incoming(R, "a reply ✅");
        var lines = Emu.Run("dump").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(2));
        var rows = lines.Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToList();
        Assert.That(rows.Select(r => r["text"]!.GetValue<string>()), Is.EqualTo(new[] { "hello", "a reply ✅" }));
        Assert.That(rows.Select(r => r["is_from_me"]!.GetValue<long>()), Is.EqualTo(new[] { 1L, 0L }));
        Assert.That(rows[1]["chat"]!.GetValue<string>(), Is.EqualTo($"{Prefix};-;{R}"));
        foreach (var key in new[] { "ROWID", "guid", "handle", "service", "error", "is_sent", "is_finished", "is_delivered", "date", "date_read", "date_delivered" })
            Assert.That(rows[0].AsObject().ContainsKey(key), Is.True, key);
    }

    private static long ChatDbNow() => MessagesEmulation.ChatDbDates.ToAppleNs(DateTimeOffset.UtcNow);

    /// <summary>The file's inode (`ls -i` works on Linux and macOS).</summary>
    private static string Inode(string path)
    {
        var psi = new ProcessStartInfo("ls") { RedirectStandardOutput = true };
        psi.ArgumentList.Add("-i");
        psi.ArgumentList.Add(path);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output.Trim().Split(' ')[0];
    }
}
