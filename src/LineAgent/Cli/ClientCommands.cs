using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LineAgent.Api;
using LineAgent.Hosting;
using Microsoft.Extensions.Configuration;

namespace LineAgent.Cli;

/// <summary>Commands that talk to a running agent through its API (or read its data directory).</summary>
public static class ClientCommands
{
    public static readonly Option<string?> Url = new("--url") { Description = "The agent's URL; default: the first of Api:Urls." };
    public static readonly Option<bool> Json = new("--json") { Description = "Print the API's JSON as is." };

    public static IEnumerable<Command> Create()
    {
        var token = new Command("token", "Print the API token of the agent (from Api:Token or <data dir>/api-token).");
        token.SetAction(result =>
        {
            var config = LoadConfiguration(result);
            var value = config["Api:Token"] is { Length: > 0 } t ? t : ApiToken.ReadFile(new DataDirectory(DataDirOf(config)).TokenFile);
            if (value is null)
            {
                Console.Error.WriteLine("No token yet: start the agent once (lineagent run) and it writes one.");
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
            if (result.GetValue(Json)) { Console.WriteLine(body!.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true })); return 0; }
            Console.WriteLine($"LineAgent {S(body, "version")} at {client.BaseUrl} — up {TimeSpan.FromSeconds(body!["uptimeSeconds"]!.GetValue<long>()):d\\.hh\\:mm\\:ss}");
            if (body["dryRun"]!.GetValue<bool>())
                Console.WriteLine($"DRY RUN: sends are written to {S(body, "dryRunOutbox")}");
            foreach (var line in body["lines"]!.AsArray())
            {
                Console.WriteLine($"line {S(line, "id")}{(line!["active"]!.GetValue<bool>() ? "" : " (paused)")}");
                foreach (var h in line["health"]!.AsArray())
                    Console.WriteLine($"  {S(h, "type"),-9} {S(h, "state"),-12} {S(h, "detail")}");
            }
            var c = body["counts"]!;
            Console.WriteLine($"scheduled {c["scheduled"]}, queued {c["queued"]}, sending {c["sending"]}, sent today {c["sentToday"]}, failed today {c["failedToday"]}");
            Console.WriteLine($"next scheduled: {Local(S(body, "nextScheduledAt")) ?? "none"}");
            var last = body["lastError"];
            Console.WriteLine(last is null ? "last error: none" : $"last error: {S(last, "code")} — {S(last, "message")} ({S(last, "messageId")})");
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
        var send = new Command("send", "Send a message now, or at a time with --at.") { recipient, content, at, zone, type, lineId, name, subject, Url, Json };
        send.SetAction((result, ct) => WithClient(result, async client =>
        {
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
            }, ct);
            if (code is not (201 or 202)) return Fail(code, body);
            if (result.GetValue(Json)) { Console.WriteLine(body!.ToJsonString()); return 0; }
            Console.WriteLine(Describe(body!));
            return 0;
        }));
        yield return send;

        var statusFilter = new Option<string?>("--status") { Description = "scheduled, queued, sending, sent, failed, cancelled (comma-separated)." };
        var query = new Option<string?>("--search", "-q") { Description = "Full-text search over content and names." };
        var limit = new Option<int>("--limit") { Description = "How many (newest first).", DefaultValueFactory = _ => 20 };
        var list = new Command("list", "List messages, newest first.") { statusFilter, query, limit, Url, Json };
        list.SetAction((result, ct) => WithClient(result, async client =>
        {
            var qs = new List<string> { $"limit={result.GetValue(limit)}" };
            if (result.GetValue(statusFilter) is { } s) qs.Add("status=" + Uri.EscapeDataString(s));
            if (result.GetValue(query) is { } q) qs.Add("q=" + Uri.EscapeDataString(q));
            var (code, body) = await client.SendAsync(HttpMethod.Get, "/api/messages?" + string.Join("&", qs), ct: ct);
            if (code != 200) return Fail(code, body);
            if (result.GetValue(Json)) { Console.WriteLine(body!.ToJsonString()); return 0; }
            foreach (var m in body!["items"]!.AsArray())
                Console.WriteLine(Describe(m!));
            return 0;
        }));
        yield return list;

        var id = new Argument<string>("id") { Description = "Message id (msg_...)." };
        var cancel = new Command("cancel", "Cancel a scheduled or queued message.") { id, Url };
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
            return Math.Max(code, await new LiveCheck(config, client, Console.Out).RunAsync(address, ct));
        }));
        yield return doctor;
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

    private static string? S(JsonNode? node, string name) => node?[name] is JsonValue v ? v.ToString() : null;

    private static string? Local(string? iso) =>
        iso is null ? null : DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture);

    private static int Fail(int code, JsonNode? body)
    {
        Console.Error.WriteLine(AgentClient.Describe(code, body));
        return 1;
    }

    private static async Task<int> WithClient(ParseResult result, Func<AgentClient, Task<int>> action)
    {
        using var client = new AgentClient(LoadConfiguration(result), result.GetValue(Url));
        try
        {
            return await action(client);
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"The agent does not answer at {client.BaseUrl} ({e.Message}). Start it: lineagent run (or launchctl kickstart -k gui/$UID/com.lineagent.agent).");
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

    public static string DataDirOf(IConfiguration config) =>
        (config.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions()).ResolveDataDir();
}
