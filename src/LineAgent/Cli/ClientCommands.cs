using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Hosting;
using LineAgent.Messages;
using Microsoft.Extensions.Configuration;

namespace LineAgent.Cli;

/// <summary>Commands that talk to a running agent through its API (or read its data directory).</summary>
public static class ClientCommands
{
    public static readonly Option<string?> Url = new("--url") { Description = "The agent's URL; default: where the data dir's agent listens (<data dir>/agent-url), else the first of Api:Urls." };

    /// <summary>The commands that only ask the running agent: they take only <see cref="ClientSettings"/>.</summary>
    public static readonly IReadOnlySet<string> AsksTheAgent = new HashSet<string>(StringComparer.Ordinal) { "status", "send", "preview", "list", "cancel", "token", "open" };

    /// <summary>The settings such a command reads itself: where the agent is, its token, and how long it may take to answer (AgentClient).</summary>
    public static readonly IReadOnlySet<string> ClientSettings = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        { "Api:Urls", "Api:Token", "Api:SendWaitSeconds", "Agent:DataDir", "Bridge:HealthWaitForViews" };
    public static readonly Option<bool> Json = new("--json") { Description = "Print the API's JSON as is." };

    private static readonly System.Text.Json.JsonSerializerOptions JsonOut = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly System.Text.Json.JsonSerializerOptions JsonOutIndented = new(JsonOut) { WriteIndented = true };

    /// <summary>
    /// The API's JSON as the API writes it: "+1202..." and "Привет", not "\u002B1202..." and "\u041F..." (characters past
    /// U+FFFF, such as emoji, stay \u escapes, as in the API's answers).
    /// </summary>
    internal static string JsonText(JsonNode body, bool indented = false) => body.ToJsonString(indented ? JsonOutIndented : JsonOut);

    public static IEnumerable<Command> Create()
    {
        var token = new Command("token", "Print the API token of the agent (from Api:Token or <data dir>/api-token).");
        token.SetAction(result =>
        {
            var config = LoadConfiguration(result);
            var value = config["Api:Token"] is { Length: > 0 } t ? t : ApiToken.ReadFile(DataDirectory.TokenFileIn(DataDirOf(config)));
            if (value is null)
            {
                Console.Error.WriteLine($"No token yet. The agent writes it when it first starts: {AgentCli.StartAdvice}.");
                return 1;
            }
            Console.WriteLine(value);
            return 0;
        });
        yield return token;

        var status = new Command("status", "Show the running agent: lines, health, counts, next scheduled, last error.") { Url, Json };
        status.SetAction((result, ct) => WithClient(result, async client =>
        {
            var (code, body) = await client.SendAsync(HttpMethod.Get, "/api/status", ct: ct);
            if (code != 200) return Fail(code, body);
            if (result.GetValue(Json)) { Console.WriteLine(JsonText(body!, indented: true)); return 0; }
            Console.WriteLine($"LineAgent {S(body, "version")} at {client.BaseUrl} — up {TimeSpan.FromSeconds(body!["uptimeSeconds"]!.GetValue<long>()):d\\.hh\\:mm\\:ss}");
            if (body["dryRun"]!.GetValue<bool>())
                Console.WriteLine($"DRY RUN: sends are written to {S(body, "dryRunOutbox")}");
            // The counts below point here when the database cannot be read (probe: "see storage", and no storage line).
            if (body["storage"] is JsonObject storage && S(storage, "state") is { } state && state != "ok")
                Console.WriteLine($"storage: {state}{(S(storage, "since") is { } since ? $" since {Local(since)}" : "")} — {S(storage, "detail")}");
            if (body["recovery"] is JsonObject recovery)
                Console.WriteLine($"recovery pending: {S(recovery, "detail")} (next attempt {Local(S(recovery, "nextAttemptAt")) ?? "soon"}); nothing is sent until it succeeds");
            foreach (var line in body["lines"]!.AsArray())
            {
                Console.WriteLine($"line {S(line, "id")}{(line!["active"]!.GetValue<bool>() ? "" : " (paused)")}");
                foreach (var h in line["health"]!.AsArray())
                    Console.WriteLine($"  {S(h, "type"),-9} {S(h, "state"),-12} {S(h, "detail")}");
            }
            Console.WriteLine(body["counts"] is JsonObject c
                ? $"scheduled {c["scheduled"]}, queued {c["queued"]}, sending {c["sending"]}, sent today {c["sentToday"]}, failed today {c["failedToday"]}"
                : "counts: unknown (the database cannot be read; see storage above)");
            Console.WriteLine($"next send: {Local(S(body, "nextScheduledAt")) ?? "none"}");
            var last = body["lastError"];
            Console.WriteLine(last is null ? "last error: none"
                : $"last error: {S(last, "code")} — {S(last, "message")}{(last["messageId"] is null ? "" : $" ({S(last, "messageId")})")}");
            return 0;
        }));
        yield return status;

        var recipient = new Argument<string>("recipient") { Description = "Phone number (E.164 or national) or email address." };
        var content = new Argument<string>("content") { Description = "The text to send." };
        var at = new Option<string?>("--at") { Description = "Send at this time: ISO 8601 (2026-12-01T09:00:00Z, or local with --time-zone)." };
        var zone = new Option<string?>("--time-zone") { Description = "IANA time zone for a local --at." };
        var type = new Option<string?>("--type") { Description = "imessage, sms, email or auto (default)." };
        var lineId = new Option<string?>("--line") { Description = "Line id (needed when the agent has several active lines)." };
        var name = new Option<string?>("--name") { Description = "Recipient name." };
        var subject = new Option<string?>("--subject") { Description = "Email subject." };
        var followUp = new Option<string[]>("--follow-up")
        {
            Description = "A follow-up as AFTER=TEXT, e.g. P2D='Any thoughts?': sent AFTER (ISO 8601 duration: P2D, PT4H, P1DT12H) the previous step was sent, "
                + "and cancelled if the recipient replies first. Repeat for more (at most 5).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var stopOnReply = new Option<bool>("--stop-on-reply") { Description = "Cancel the message (while scheduled or queued) if the recipient replies first." };
        var recipientWindow = new Option<string?>("--recipient-window")
        {
            Description = "Hours in the recipient's own time zone, FROM-TO as HH:mm-HH:mm (e.g. 09:00-20:00); outside them the message waits.",
        };
        var send = new Command("send", "Send a message now, or at a time with --at.")
        {
            recipient, content, at, zone, type, lineId, name, subject, followUp, stopOnReply, recipientWindow, Url, Json,
        };
        send.SetAction((result, ct) => WithClient(result, async client =>
        {
            if (!TrySequenceFields(result, followUp, stopOnReply, recipientWindow, out var fields))
                return 1;
            var to = result.GetValue(recipient)!;
            var (code, body) = await client.SendAsync(HttpMethod.Post, "/api/messages", new
            {
                content = result.GetValue(content),
                recipientPhone = to.Contains('@') ? null : to,
                recipientEmail = to.Contains('@') ? to : null,
                recipientName = result.GetValue(name),
                type = result.GetValue(type),
                lineId = result.GetValue(lineId),
                scheduledAt = result.GetValue(at),
                timeZone = result.GetValue(zone),
                subject = result.GetValue(subject),
                stopOnReply = fields.StopOnReply,
                followUps = fields.FollowUps,
                recipientWindow = fields.RecipientWindow,
            }, ct);
            if (code is not (201 or 202)) return FailAsOptions(code, body);
            // An --at already past is due at once: said, as it was sent without a word (probe I).
            if (result.GetValue(at) is not null && S(body, "scheduledAt") is { } due && S(body, "createdAt") is { } taken
                && DateTimeOffset.TryParse(due, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var dueAt)
                && DateTimeOffset.TryParse(taken, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var takenAt)
                && dueAt < takenAt - TimeSpan.FromSeconds(1))
                Console.Error.WriteLine($"note: --at {due} had already passed ({Late(takenAt - dueAt)} before the agent took it): it was due at once.");
            if (result.GetValue(Json)) { Console.WriteLine(JsonText(body!)); return 0; }
            Console.WriteLine(Describe(body!));
            if (S(body, "sequenceId") is { } sequenceId && fields.FollowUps is { Count: > 0 } steps)
                Console.WriteLine($"  sequence {sequenceId}: {steps.Count} follow-up(s), " +
                    $"{string.Join(", ", steps.Select(f => f.After))} after the previous step is sent, stopped by a reply (GET /api/sequences/{sequenceId})");
            if (S(body, "recipientTimeZone") is { } recipientZone)
                Console.WriteLine($"  recipient hours {Window(body!["recipientWindow"])} in {recipientZone} (from the {S(body, "recipientTimeZoneSource")})");
            return 0;
        }));
        yield return send;

        var template = new Argument<string>("content") { Description = "The template, as on a bulk send: Hi {{firstName}}, ..." };
        var leads = new Option<string[]>("--lead") { Description = "A lead id (repeat for more).", Arity = ArgumentArity.ZeroOrMore };
        var tag = new Option<string?>("--tag") { Description = "All leads with this tag (the lead filter)." };
        var leadQuery = new Option<string?>("--search", "-q", "--q") { Description = "All leads whose names, company, phone or email contain this (the lead filter)." };
        var preview = new Command("preview",
            "Show what a bulk send would do, and when each lead's message would go under the line's pacing; stores and sends nothing.")
        {
            template, leads, tag, leadQuery, at, zone, type, lineId, subject, followUp, stopOnReply, recipientWindow, Url, Json,
        };
        preview.SetAction((result, ct) => WithClient(result, async client =>
        {
            if (!TrySequenceFields(result, followUp, stopOnReply, recipientWindow, out var fields))
                return 1;
            var ids = result.GetValue(leads) is { Length: > 0 } l ? l : null;
            var filter = result.GetValue(tag) is null && result.GetValue(leadQuery) is null ? null
                : new { tag = result.GetValue(tag), q = result.GetValue(leadQuery) };
            if (ids is null && filter is null)
            {
                Console.Error.WriteLine("preview needs leads: --lead ID (repeatable), --tag TAG or --search TEXT.");
                return 1;
            }
            var (code, body) = await client.SendAsync(HttpMethod.Post, "/api/messages/bulk/preview", new
            {
                leadIds = ids,
                leadFilter = filter,
                content = result.GetValue(template),
                type = result.GetValue(type),
                lineId = result.GetValue(lineId),
                scheduledAt = result.GetValue(at),
                timeZone = result.GetValue(zone),
                subject = result.GetValue(subject),
                stopOnReply = fields.StopOnReply,
                followUps = fields.FollowUps,
                recipientWindow = fields.RecipientWindow,
            }, ct);
            if (code != 200) return FailAsOptions(code, body);
            if (result.GetValue(Json)) { Console.WriteLine(JsonText(body!)); return 0; }
            var entries = body!["messages"]!.AsArray().Select(e => e!).ToList();
            var contacts = await LeadsAsync(client, entries.Select(e => S(e, "leadId")!).ToHashSet(), result.GetValue(tag), result.GetValue(leadQuery), ct);
            PrintPreview(body, entries, contacts);
            return 0;
        }));
        yield return preview;

        var statusFilter = new Option<string?>("--status") { Description = $"{string.Join(", ", MessageStatus.All)} (comma-separated)." };
        var query = new Option<string?>("--search", "-q") { Description = "Full-text search over content and names." };
        var limit = new Option<int>("--limit")
        {
            Description = "How many (newest first), 1-500.", DefaultValueFactory = _ => 20,
            // The parser's own message names System.Int32.
            CustomParser = r => r.Tokens is [var token] && int.TryParse(token.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 500
                ? n
                : Refuse(r, $"--limit takes a number from 1 to 500; got '{string.Join(' ', r.Tokens.Select(t => t.Value))}'."),
        };
        var list = new Command("list", "List messages, newest first.") { statusFilter, query, limit, Url, Json };
        list.SetAction((result, ct) => WithClient(result, async client =>
        {
            var qs = new List<string> { $"limit={result.GetValue(limit)}" };
            if (result.GetValue(statusFilter) is { } s) qs.Add("status=" + Uri.EscapeDataString(s));
            if (result.GetValue(query) is { } q) qs.Add("q=" + Uri.EscapeDataString(q));
            var (code, body) = await client.SendAsync(HttpMethod.Get, "/api/messages?" + string.Join("&", qs), ct: ct);
            if (code != 200) return Fail(code, body);
            if (result.GetValue(Json)) { Console.WriteLine(JsonText(body!)); return 0; }
            var shown = 0;
            while (true)
            {
                foreach (var m in body!["items"]!.AsArray().Take(result.GetValue(limit) - shown))
                {
                    Console.WriteLine(Describe(m!));
                    shown++;
                }
                // A search for text no index holds (an emoji) answers a span of the history per page, maybe short: read on.
                if (shown >= result.GetValue(limit) || body["nextCursor"]?.GetValue<string>() is not { } cursor)
                    break;
                (code, body) = await client.SendAsync(HttpMethod.Get, "/api/messages?" + string.Join("&", qs.Append("cursor=" + Uri.EscapeDataString(cursor))), ct: ct);
                if (code != 200) return Fail(code, body);
            }
            if (shown == 0)
                Console.Error.WriteLine("No messages match.");
            return 0;
        }));
        yield return list;

        var id = new Argument<string>("id") { Description = "Message id (msg_...)." };
        var cancel = new Command("cancel", "Cancel a scheduled or queued message (or one still waiting for Messages.app).") { id, Url };
        cancel.SetAction((result, ct) => WithClient(result, async client =>
        {
            var (code, body) = await client.SendAsync(HttpMethod.Post, $"/api/messages/{Uri.EscapeDataString(result.GetValue(id)!)}/cancel", ct: ct);
            if (code != 200) return Fail(code, body);
            Console.WriteLine(Describe(body!));
            return 0;
        }));
        yield return cancel;

        var live = new Option<string?>("--live")
        {
            Description = "Also send ONE iMessage to this address (your own phone or Apple ID email) and time each stage: script accepted, chat.db row, sent, delivered. Prints a report to paste into a bug report.",
        };
        var doctor = new Command("doctor", "Check everything a line needs and say how to fix what is wrong; exit 1 when a required check fails.") { Url, live };
        doctor.SetAction((result, ct) => WithClient(result, async client =>
        {
            var config = LoadConfiguration(result);
            var code = await new Doctor(config, client).RunAsync(Console.Out, ct);
            if (result.GetValue(live) is not { } address)
                return code;
            Console.WriteLine();
            try
            {
                return Math.Max(code, await new LiveCheck(config, client, Console.Out).RunAsync(address, ct));
            }
            catch (Exception e) when (ConfigurationProblem.Describe(e) is { } problem)
            {
                // The doctor has just said it as a failed check; the live send cannot go on without the setting.
                Console.Error.WriteLine(problem);
                return Storage.DatabaseUnusableException.ExitCodeConfig;
            }
        }, needsToken: false));
        yield return doctor;
    }

    private static int Refuse(System.CommandLine.Parsing.ArgumentResult r, string error)
    {
        r.AddError(error);
        return 0;
    }

    private static string Describe(JsonNode m)
    {
        var to = S(m, "recipientPhone") ?? S(m, "recipientEmail");
        var when = S(m, "status") switch
        {
            "scheduled" => $" for {Local(S(m, "scheduledAt"))}",
            "queued" when S(m, "notBefore") is { } nb => $" until {Local(nb)}",
            "sent" => $" at {Local(S(m, "sentAt"))}",
            _ => "",
        };
        var error = m["error"] is { } e ? $" — {S(e, "code")}: {S(e, "message")}" : "";
        var text = S(m, "content") ?? "";
        if (text.Length > 50) text = text[..47] + "...";
        return $"{S(m, "id")}  {S(m, "status"),-9} {S(m, "type"),-8} {to}{when}{error}  \"{text.ReplaceLineEndings(" ")}\"";
    }

    /// <summary>The fields of issue 13 that send and preview share, checked here so a typo sends nothing.</summary>
    private sealed record SequenceOptions(bool? StopOnReply, List<FollowUpOption>? FollowUps, WindowOption? RecipientWindow);
    private sealed record FollowUpOption(string After, string Content);
    private sealed record WindowOption(string From, string To);

    private static bool TrySequenceFields(ParseResult result, Option<string[]> followUp, Option<bool> stopOnReply, Option<string?> window,
        out SequenceOptions fields)
    {
        fields = new SequenceOptions(null, null, null);
        // Every bad option is named, not only the first (probe: a bad --recipient-window went unsaid behind a bad --follow-up).
        var ok = true;
        void Bad(string line)
        {
            Console.Error.WriteLine(line);
            ok = false;
        }
        var steps = new List<FollowUpOption>();
        foreach (var given in result.GetValue(followUp) ?? [])
        {
            var eq = given.IndexOf('=');
            if (eq < 0)
            {
                Bad($"--follow-up '{given}': give AFTER=TEXT, e.g. --follow-up \"P2D=Any thoughts?\" (AFTER an ISO 8601 duration such as P2D, PT4H or P1DT12H).");
                continue;
            }
            var after = given[..eq].Trim();
            var text = given[(eq + 1)..];
            if (!Durations.TryParse(after, out _, out var why))
                Bad($"--follow-up '{given}': {why}.");
            else if (string.IsNullOrWhiteSpace(text))
                Bad($"--follow-up '{given}': the text after '=' is empty.");
            else
                steps.Add(new FollowUpOption(after, text));
        }
        WindowOption? hours = null;
        if (result.GetValue(window) is { } w)
        {
            // Checked here as the agent checks it, so that the answer speaks of this option, not of the API's JSON
            // ({"from": "09:00", "to": "20:00"}).
            if (w.Split('-', StringSplitOptions.TrimEntries) is not [{ Length: > 0 } from, { Length: > 0 } to]
                || !Scheduling.SendWindow.TryParse(from, out var start) || !Scheduling.SendWindow.TryParse(to, out var end))
                Bad($"--recipient-window '{w}': give FROM-TO as HH:mm-HH:mm (00:00-23:59), e.g. 09:00-20:00.");
            else if (start == end)
                Bad($"--recipient-window '{w}': FROM and TO are equal; give the hours the recipient may be written to.");
            else
                hours = new WindowOption(from, to);
        }
        if (!ok)
            return false;
        fields = new SequenceOptions(result.GetValue(stopOnReply) ? true : null, steps.Count > 0 ? steps : null, hours);
        return true;
    }

    /// <summary>The leads of a preview by id, for their addresses: one by one when few, else a page at a time under the same filter.</summary>
    private static async Task<Dictionary<string, JsonNode>> LeadsAsync(AgentClient client, HashSet<string> ids, string? tag, string? q, CancellationToken ct)
    {
        var found = new Dictionary<string, JsonNode>();
        if (ids.Count <= 25 && tag is null && q is null)
        {
            foreach (var leadId in ids)
                if (await client.SendAsync(HttpMethod.Get, $"/api/leads/{Uri.EscapeDataString(leadId)}", ct: ct) is (200, { } lead))
                    found[leadId] = lead;
            return found;
        }
        string? cursor = null;
        do
        {
            var qs = new List<string> { "limit=500" };
            if (tag is not null) qs.Add("tag=" + Uri.EscapeDataString(tag));
            if (q is not null) qs.Add("q=" + Uri.EscapeDataString(q));
            if (cursor is not null) qs.Add("cursor=" + Uri.EscapeDataString(cursor));
            var (code, page) = await client.SendAsync(HttpMethod.Get, "/api/leads?" + string.Join("&", qs), ct: ct);
            if (code != 200) break;
            foreach (var lead in page!["items"]!.AsArray())
                if (S(lead, "id") is { } leadId && ids.Contains(leadId))
                    found[leadId] = lead!;
            cursor = S(page, "nextCursor");
        } while (cursor is not null && found.Count < ids.Count);
        return found;
    }

    private static void PrintPreview(JsonNode body, List<JsonNode> entries, Dictionary<string, JsonNode> contacts)
    {
        var rows = new List<string[]> { new[] { "LEAD", "RECIPIENT", "TYPE", "ESTIMATED SEND (LOCAL)", "ESTIMATED SEND (UTC)", "" } };
        foreach (var e in entries)
        {
            var leadId = S(e, "leadId")!;
            var lead = contacts.GetValueOrDefault(leadId);
            var to = S(e, "type") == "email" ? S(lead, "email") : S(lead, "phone") ?? S(lead, "email");
            var notes = new List<string>();
            if (e["error"] is { } error)
                notes.Add($"rejected — {S(error, "code")}: {S(error, "message")}");
            foreach (var f in e["followUps"]?.AsArray() ?? [])
                notes.Add($"step {S(f, "step")} {Utc(S(f, "estimatedSendAt")) ?? "later"}");
            if (S(e, "recipientTimeZone") is { } recipientZone)
                notes.Add($"recipient zone {recipientZone} ({S(e, "recipientTimeZoneSource")})");
            var estimated = S(e, "estimatedSendAt");
            rows.Add([leadId, to ?? "-", S(e, "type") ?? "-", Local(estimated) ?? (e["error"] is null ? "after 400 days" : "-"),
                Utc(estimated) ?? "-", string.Join("; ", notes)]);
        }
        var widths = Enumerable.Range(0, 5).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (var r in rows)
            Console.WriteLine(string.Join("  ", r.Take(5).Select((cell, c) => cell.PadRight(widths[c]))) + (r[5].Length > 0 ? "  " + r[5] : "").TrimEnd());
        Console.WriteLine();
        Console.WriteLine($"line {S(body, "lineId")} ({S(body, "timeZone")}): {S(body, "total")} leads, {S(body, "sendable")} to send, " +
            $"{S(body, "rejected")} rejected, {S(body, "alreadyQueued")} already pending on the line");
        Console.WriteLine(S(body, "firstSendAt") is { } first
            ? $"first send {Local(first)} ({Utc(first)}), last send {Local(S(body, "lastSendAt"))} ({Utc(S(body, "lastSendAt"))})"
            : "first send: none");
        if (body["beyondHorizon"] is JsonValue beyond && beyond.GetValue<int>() > 0)
            Console.WriteLine($"{beyond} message(s) would go out later than 400 days from now (the preview plays the pacer no further): not in the dates above");
        Console.WriteLine("by type: " + Counts(body["byType"]));
        Console.WriteLine("by day:  " + Counts(body["byDay"]));
        Console.WriteLine("Nothing was stored or sent.");
    }

    private static string Counts(JsonNode? counts) =>
        counts is JsonObject o && o.Count > 0 ? string.Join(", ", o.Select(kv => $"{kv.Key} {kv.Value}")) : "none";

    private static string Window(JsonNode? window) => window is null ? "" : $"{S(window, "from")}-{S(window, "to")}";

    /// <summary>UTC, to the millisecond when there is one: 2026-12-01T14:00:45Z.</summary>
    private static string? Utc(string? iso) =>
        iso is null ? null : DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFF'Z'", CultureInfo.InvariantCulture);

    private static string? S(JsonNode? node, string name) => node?[name] is JsonValue v ? v.ToString() : null;

    private static string? Local(string? iso) =>
        iso is null ? null : DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture);

    private static int Fail(int code, JsonNode? body)
    {
        Console.Error.WriteLine(AgentClient.Describe(code, body));
        return 1;
    }

    /// <summary>"40 s", "3 min", "2 h", "5 days": how long ago a time was.</summary>
    private static string Late(TimeSpan t) => t.TotalMinutes < 1 ? $"{t.TotalSeconds:0} s" : t.TotalHours < 1 ? $"{t.TotalMinutes:0} min"
        : t.TotalDays < 2 ? $"{t.TotalHours:0} h" : $"{t.TotalDays:0} days";

    /// <summary>The API's field names in a send's or a preview's problem, as this command's options ("scheduledAt" → "--at").</summary>
    private static readonly (string Field, string Option)[] SendOptions =
    [
        ("scheduledAt", "--at"), ("timeZone", "--time-zone"), ("recipientPhone", "the recipient"), ("recipientEmail", "the recipient"),
        ("recipientName", "--name"), ("lineId", "--line"), ("recipientWindow", "--recipient-window"), ("followUps", "--follow-up"),
        ("stopOnReply", "--stop-on-reply"), ("subject", "--subject"), ("type", "--type"), ("leadIds", "--lead"), ("leadFilter", "--tag or --search"),
    ];

    private static int FailAsOptions(int code, JsonNode? body)
    {
        // Only each problem's own subject (the field name its sentence starts with) and the agent's "give a timeZone"
        // hint are rewritten: the user's text, template snippets and a channel's error stay as they are.
        if (body?["problems"] is JsonArray { Count: > 0 } problems && body["code"]?.GetValue<string>() is { } problemCode)
        {
            var sentences = problems.Select(p =>
            {
                var field = p?["field"]?.GetValue<string>() ?? "";
                var detail = p?["detail"]?.GetValue<string>() ?? "";
                var option = SendOptions.FirstOrDefault(o => o.Field == field).Option;
                if (option is not null && detail.StartsWith(field, StringComparison.Ordinal))
                    detail = option + detail[field.Length..];
                return detail.Replace("give a timeZone", "give --time-zone", StringComparison.Ordinal);
            });
            Console.Error.WriteLine($"HTTP {code} {problemCode}: {string.Join(" ", sentences)}");
            return 1;
        }
        return Fail(code, body);
    }

    /// <param name="needsToken">False for the doctor, which reports what it can without one.</param>
    private static async Task<int> WithClient(ParseResult result, Func<AgentClient, Task<int>> action, bool needsToken = true)
    {
        // What the agent answers holds text from strangers (replies, names, error details): never raw control bytes.
        using var terminal = TerminalText.ForConsole();
        using var client = new AgentClient(LoadConfiguration(result), result.GetValue(Url));
        if (needsToken && client.Token is null)
        {
            // It would be a 401 from the agent, which says nothing about where the token was looked for.
            Console.Error.WriteLine(client.NoToken);
            return 1;
        }
        try
        {
            return await action(client);
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"The agent does not answer at {client.BaseUrl} ({e.Message}). Start it: {AgentCli.StartAdvice}.");
            return 1;
        }
        catch (TaskCanceledException e) when (e.InnerException is TimeoutException)
        {
            // Before: an unhandled exception and exit 134, while the message of a send was being sent (probe I).
            Console.Error.WriteLine($"The agent at {client.BaseUrl} did not answer within {client.Timeout.TotalSeconds:0} s: it is busy or hung (its log: " +
                                    $"{AgentCli.LogAdvice}). What was asked may have been done all the same: after a send, look for it with `lineagent list` before sending it again.");
            return 1;
        }
    }

    /// <summary>The same layered configuration the agent reads, without starting it.</summary>
    public static IConfiguration LoadConfiguration(ParseResult result)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true);
        builder.AddAgentConfiguration(result.UnmatchedTokens.ToArray(), AgentCli.Overrides(result));
        return builder.Configuration;
    }

    public static string DataDirOf(IConfiguration config) => AgentOptions.DataDirFrom(config);
}
