using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using LineAgent.Tests.Support;

namespace LineAgent.Tests.Sequences;

/// <summary>`lineagent send --follow-up/--stop-on-reply/--recipient-window` and `lineagent preview`, run as a user runs them.</summary>
public sealed class FollowUpCliTests
{
    /// <summary>A dry-run agent whose line paces (45 s gap, 30 s jitter: 60 s between sends at the jitter's mean), 08:00-21:00 UTC.</summary>
    private static Task<AgentProcess> StartAsync(TempDir dir) => AgentProcess.StartAsync(dir.Path, args:
    [
        "--dry-run", "--Agent:DryRunPacing=true", "--Lines:0:Id=default",
        "--Lines:0:Pacing:MinGap=00:00:45", "--Lines:0:Pacing:Jitter=00:00:30",
        "--Lines:0:Pacing:Window:From=08:00", "--Lines:0:Pacing:Window:To=21:00", "--Lines:0:Pacing:Window:TimeZone=UTC",
    ]);

    private static string[] Common(TempDir dir, AgentProcess agent) =>
        ["--data-dir", dir.Path, "--url", agent.BaseAddress.ToString(), $"--Api:Token={agent.Token}"];

    /// <summary>Tomorrow 10:00 UTC: inside the line's window, so every estimate depends on this time and the pacing only.</summary>
    private static string Tomorrow10Utc() =>
        new DateTimeOffset(DateTime.UtcNow.Date.AddDays(1).AddHours(10), TimeSpan.Zero).ToString("O", CultureInfo.InvariantCulture);

    [Test]
    public async Task SendWithFollowUps_ShouldCreateASequenceWithTheGivenSteps_StopOnReplyAndRecipientHours()
    {
        using var dir = new TempDir();
        using var agent = await StartAsync(dir);
        using var api = agent.Api();

        var sent = await Programs.LineAgentAsync(["send", "+12025550123", "Hello from the CLI", "--at", Tomorrow10Utc(),
            "--follow-up", "P2D=Any thoughts?", "--follow-up", "PT4H=Last note = really", "--stop-on-reply", "--recipient-window", "09:00-20:00",
            .. Common(dir, agent)]);
        Assert.That(sent.ExitCode, Is.Zero, sent.Stderr);
        Assert.That(sent.Lines[0], Does.Match(@"^msg_\w+\s+scheduled\s+imessage \+12025550123 for "));
        var first = await api.GetJsonAsync($"/api/messages/{sent.Lines[0].Split(' ')[0]}");
        var sequenceId = first.Str("sequenceId");
        Assert.That(sent.Stdout, Does.Contain($"sequence {sequenceId}: 2 follow-up(s), P2D, PT4H after the previous step is sent"));
        Assert.That(sent.Stdout, Does.Contain("recipient hours 09:00-20:00 in America/New_York (from the number)"));

        var steps = (await api.GetJsonAsync($"/api/sequences/{sequenceId}"))["steps"]!.AsArray().Select(s => s!.AsObject()).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(steps.Select(s => s["sequenceStep"]!.GetValue<int>()), Is.EqualTo(new[] { 0, 1, 2 }));
            Assert.That(steps.Select(s => s.Str("content")), Is.EqualTo(new[] { "Hello from the CLI", "Any thoughts?", "Last note = really" }),
                "the text is everything after the first '='");
            Assert.That(steps.Select(s => s.StrOrNull("followUpAfter")), Is.EqualTo(new[] { null, "P2D", "PT4H" }));
            Assert.That(steps.Select(s => s["stopOnReply"]!.GetValue<bool>()), Is.All.True, "--stop-on-reply on the first; follow-ups always");
            Assert.That(steps.Skip(1).Select(s => s["waitingForPreviousStep"]!.GetValue<bool>()), Is.All.True);
            Assert.That(steps.Select(s => s["recipientWindow"]?.ToJsonString()), Is.All.EqualTo("""{"from":"09:00","to":"20:00"}"""));
            Assert.That(steps.Select(s => (s.StrOrNull("recipientTimeZone"), s.StrOrNull("recipientTimeZoneSource"))),
                Is.All.EqualTo(("America/New_York", "number")));
        });

        // Without the flags: no sequence, and the first message does not stop on a reply (the API's default).
        var plain = await Programs.LineAgentAsync(["send", "+12025550124", "Just one", "--at", Tomorrow10Utc(), .. Common(dir, agent)]);
        Assert.That(plain.ExitCode, Is.Zero, plain.Stderr);
        Assert.That(plain.Lines, Has.Length.EqualTo(1));
        var single = await api.GetJsonAsync($"/api/messages/{plain.Lines[0].Split(' ')[0]}");
        Assert.That((single["stopOnReply"]!.GetValue<bool>(), single.StrOrNull("sequenceId"), single["recipientWindow"]), Is.EqualTo((false, (string?)null, (JsonNode?)null)));

        // --json prints the API's message as is.
        var json = await Programs.LineAgentAsync(["send", "ana@example.com", "Hi Ana", "--at", Tomorrow10Utc(), "--follow-up", "P1D=Ana?", "--json", .. Common(dir, agent)]);
        Assert.That(json.ExitCode, Is.Zero, json.Stderr);
        var printed = JsonNode.Parse(json.Stdout)!;
        Assert.That((printed.Str("type"), printed["sequenceStep"]!.GetValue<int>(), printed["stopOnReply"]!.GetValue<bool>()), Is.EqualTo(("email", 0, false)));
    }

    [Test]
    public async Task Preview_ShouldPrintOneLinePerLead_WithTheEstimatedSendAtTheApiGives_AndStoreNothing()
    {
        using var dir = new TempDir();
        using var agent = await StartAsync(dir);
        using var api = agent.Api();
        var phones = new Dictionary<string, string>();
        foreach (var (name, phone) in new[] { ("Ana", "+12025550101"), ("Ben", "+12125550102"), ("Cleo", "+61291234567") })
        {
            var lead = await (await api.PostAsJsonAsync("/api/leads", new { firstName = name, phone, tags = new[] { "cli" } })).ExpectAsync(HttpStatusCode.Created);
            phones[lead.Str("id")] = phone;
        }
        var other = await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Dan", phone = "+12025550199" })).ExpectAsync(HttpStatusCode.Created);
        var at = Tomorrow10Utc();

        string[] args = ["preview", "Hi {{firstName}}", "--tag", "cli", "--at", at, "--follow-up", "P2D=Any news, {{firstName}}?",
            "--stop-on-reply", "--recipient-window", "09:00-20:00", .. Common(dir, agent)];
        var shown = await Programs.LineAgentAsync(args);
        TestContext.Out.WriteLine(shown.Stdout);
        Assert.That(shown.ExitCode, Is.Zero, shown.Stderr);

        // The same body straight to the API.
        var expected = await (await api.PostAsJsonAsync("/api/messages/bulk/preview", new
        {
            leadFilter = new { tag = "cli" }, content = "Hi {{firstName}}", scheduledAt = at, stopOnReply = true,
            followUps = new[] { new { after = "P2D", content = "Any news, {{firstName}}?" } }, recipientWindow = new { from = "09:00", to = "20:00" },
        })).ExpectAsync(HttpStatusCode.OK);
        var entries = expected["messages"]!.AsArray().Select(e => e!).ToList();
        Assert.That(entries, Has.Count.EqualTo(3));
        Assert.That(entries.Select(e => e.StrOrNull("estimatedSendAt")).Distinct().Count(), Is.EqualTo(3), "paced: one estimate per lead");

        var leadLines = shown.Lines.Where(l => l.StartsWith("lead_", StringComparison.Ordinal)).ToList();
        Assert.That(leadLines, Has.Count.EqualTo(3), "one line per lead");
        Assert.That(shown.Lines[0], Does.StartWith("LEAD").And.Contain("RECIPIENT").And.Contain("ESTIMATED SEND (UTC)"));
        Assert.That(shown.Stdout, Does.Not.Contain(other.Str("id")), "the filter's leads only");
        Assert.Multiple(() =>
        {
            foreach (var entry in entries)
            {
                var leadId = entry.Str("leadId");
                var line = leadLines.Single(l => l.StartsWith(leadId + " ", StringComparison.Ordinal));
                var cells = line.Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                Assert.That(cells[1], Is.EqualTo(phones[leadId]), "recipient");
                Assert.That(cells[2], Is.EqualTo(entry.Str("type")));
                var estimated = DateTimeOffset.Parse(entry.Str("estimatedSendAt"), CultureInfo.InvariantCulture);
                Assert.That(DateTimeOffset.Parse(cells[3], CultureInfo.InvariantCulture), Is.EqualTo(estimated), $"{line}: local time");
                Assert.That(DateTimeOffset.Parse(cells[4], CultureInfo.InvariantCulture), Is.EqualTo(estimated), $"{line}: UTC");
                Assert.That(cells[4], Does.EndWith("Z"));
                var followUp = entry["followUps"]!.AsArray().Single()!;
                Assert.That(line, Does.Contain($"step 1 {DateTimeOffset.Parse(followUp.Str("estimatedSendAt"), CultureInfo.InvariantCulture).UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}"));
                Assert.That(line, Does.Contain($"recipient zone {entry.Str("recipientTimeZone")} ({entry.Str("recipientTimeZoneSource")})"));
            }
        });
        Assert.That(shown.Stdout, Does.Contain($"line default (UTC): 3 leads, 3 to send, 0 rejected, 0 already pending on the line"));
        Assert.That(shown.Stdout, Does.Contain($"first send ").And.Contain("by type: imessage 6"));
        Assert.That(shown.Stdout, Does.Contain("Nothing was stored or sent."));

        // --json: the API's answer as is (the estimates depend on --at and the pacing only, so they are the same).
        var json = await Programs.LineAgentAsync([.. args, "--json"]);
        Assert.That(json.ExitCode, Is.Zero, json.Stderr);
        Assert.That(JsonNode.DeepEquals(JsonNode.Parse(json.Stdout)!["messages"], expected["messages"]), Is.True, json.Stdout);

        // --lead ids instead of a filter.
        var byId = await Programs.LineAgentAsync(["preview", "Hi {{firstName}}", "--lead", entries[0].Str("leadId"), "--lead", other.Str("id"), "--at", at, .. Common(dir, agent)]);
        Assert.That(byId.ExitCode, Is.Zero, byId.Stderr);
        Assert.That(byId.Lines.Count(l => l.StartsWith("lead_", StringComparison.Ordinal)), Is.EqualTo(2));
        Assert.That(byId.Stdout, Does.Contain("+12025550199"));

        var messages = await api.GetJsonAsync("/api/messages");
        Assert.That(messages["items"]!.AsArray(), Is.Empty, "a preview stores nothing");
    }

    [Test]
    public async Task ABadFollowUpOrWindow_ShouldBeNamed_ExitOne_AndSendNothing()
    {
        using var dir = new TempDir();
        using var agent = await StartAsync(dir);
        using var api = agent.Api();
        var lead = await (await api.PostAsJsonAsync("/api/leads", new { firstName = "Ana", phone = "+12025550101" })).ExpectAsync(HttpStatusCode.Created);

        var cases = new (string[] Options, string Error)[]
        {
            (["--follow-up", "P2D"], "--follow-up 'P2D': give AFTER=TEXT"),
            (["--follow-up", "2d=Any news?"], "--follow-up '2d=Any news?': '2d' is not an ISO 8601 duration such as P2D, PT4H or P1DT12H."),
            (["--follow-up", "P1M=Any news?"], "--follow-up 'P1M=Any news?': 'P1M' uses years or months, which have no fixed length; give days (e.g. P30D)."),
            (["--follow-up", "P1D=ok", "--follow-up", "PT4H="], "--follow-up 'PT4H=': the text after '=' is empty."),
            (["--recipient-window", "0900"], "--recipient-window '0900': give FROM-TO as HH:mm-HH:mm (00:00-23:59), e.g. 09:00-20:00."),
            // Checked by the command as the agent checks it: it answered with the API's JSON form, {"from": "09:00", "to": "20:00"}.
            (["--recipient-window", "9-5pm"], "--recipient-window '9-5pm': give FROM-TO as HH:mm-HH:mm (00:00-23:59), e.g. 09:00-20:00."),
            (["--recipient-window", "09:00-24:00"], "--recipient-window '09:00-24:00': give FROM-TO as HH:mm-HH:mm"),
            (["--recipient-window", "09:00-09:00"], "--recipient-window '09:00-09:00': FROM and TO are equal"),
            // Every bad option named, one line each (probe: only the first).
            (["--follow-up", "P2M=hi", "--recipient-window", "25:00-20:00"],
                "--follow-up 'P2M=hi': 'P2M' uses years or months, which have no fixed length; give days (e.g. P30D).\n" +
                "--recipient-window '25:00-20:00': give FROM-TO as HH:mm-HH:mm (00:00-23:59), e.g. 09:00-20:00."),
        };
        foreach (var (options, error) in cases)
        {
            foreach (var command in new[] { new[] { "send", "+12025550123", "Hello" }, ["preview", "Hello", "--lead", lead.Str("id")] })
            {
                var what = string.Join(' ', command.Concat(options));
                var result = await Programs.LineAgentAsync([.. command, .. options, .. Common(dir, agent)]);
                Assert.That(result.ExitCode, Is.EqualTo(1), what);
                Assert.That(result.Stderr.Trim(), Does.StartWith(error), what);
                Assert.That(result.Stdout, Is.Empty, what);
            }
        }
        Assert.That((await api.GetJsonAsync("/api/messages"))["items"]!.AsArray(), Is.Empty, "nothing sent or stored");
        var outbox = Path.Combine(dir.Path, "outbox");
        Assert.That(Directory.Exists(outbox) ? Directory.GetFiles(outbox) : Array.Empty<string>(), Is.Empty);
    }
}
