using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using LineAgent.Bridge;
using LineAgent.Bridge.ChatDb;
using LineAgent.Bridge.Osascript;
using LineAgent.Channels.Messages;
using LineAgent.Delivery;
using LineAgent.Hosting;
using LineAgent.Messages;
using Microsoft.Extensions.Options;
using DeliveryState = LineAgent.Messages.Delivery;

namespace LineAgent.Cli;

/// <summary>
/// `lineagent doctor --live ADDRESS`: proves the Messages path on this Mac by sending one iMessage to the
/// owner's own address and timing each stage (script accepted, chat.db row written, sent, delivered), then
/// asking what chat.db says about the address. Through the running agent when it answers (its permissions
/// are the ones that matter), else straight through the bridge from this process. Nothing is sent without
/// the explicit address.
/// </summary>
public sealed class LiveCheck(IConfiguration config, AgentClient client, TextWriter output)
{
    public static readonly TimeSpan StageTimeout = TimeSpan.FromSeconds(90);

    private readonly Stopwatch _clock = new();
    private int _failed;

    public async Task<int> RunAsync(string addressInput, CancellationToken ct)
    {
        var agent = config.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions();
        if (!TryAddress(addressInput, agent.DefaultRegion, out var address, out var problem))
        {
            output.WriteLine($"lineagent doctor --live: {problem}");
            return 2;
        }
        var text = $"LineAgent live check {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss}Z ({Guid.NewGuid().ToString("N")[..6]})";
        Line($"LineAgent live check, {DateTimeOffset.UtcNow:O}");
        Line($"host: {Environment.OSVersion.VersionString}, agent {typeof(LiveCheck).Assembly.GetName().Version}, {Environment.ProcessorCount} cores");
        Line($"address: {address}");

        if (await client.HealthyAsync(ct))
            await ThroughAgentAsync(address, text, ct);
        else
            await ThroughBridgeAsync(address, text, ct);

        Line(_failed == 0 ? "Result: every stage passed." : $"Result: {_failed} stage(s) failed.");
        Line("Paste this report into a bug report.");
        return _failed == 0 ? 0 : 1;
    }

    private static bool TryAddress(string input, string region, out string address, out string problem)
    {
        if (Recipients.LooksLikeEmail(input))
            return Recipients.TryNormalizeEmail(input, out address, out problem);
        return Recipients.TryNormalizePhone(input, region, out address, out problem);
    }

    // ---- through the running agent ----------------------------------------------------------------

    private async Task ThroughAgentAsync(string address, string text, CancellationToken ct)
    {
        Line($"path: through the running agent at {client.BaseUrl} (its own permissions)");
        var (statusCode, status) = await client.SendAsync(HttpMethod.Get, "/api/status", ct: ct);
        if (statusCode != 200)
        {
            Stage("agent", false, AgentClient.Describe(statusCode, status));
            return;
        }
        if (status!["dryRun"]?.GetValue<bool>() == true)
        {
            Stage("agent", false, "the agent runs in dry run: nothing would reach Messages; restart it without --dry-run");
            return;
        }
        if (status["lines"]?.AsArray().FirstOrDefault()?["messages"] is JsonObject health)
            Stage("permissions", Permissions(health, out var detail), detail);

        _clock.Start();
        var (code, body) = await client.SendAsync(HttpMethod.Post, "/api/messages", new
        {
            content = text, type = MessageType.IMessage,
            recipientPhone = address.Contains('@') ? null : address, recipientEmail = address.Contains('@') ? address : null,
        }, ct);
        if (code is not (201 or 202 or 500) || body?["id"] is null && body?["messageId"] is null)
        {
            Stage("script accepted", false, AgentClient.Describe(code, body));
            return;
        }
        var id = (body["id"] ?? body["messageId"])!.GetValue<string>();
        // After Messages' error 22 the line may send it again as SMS, and the answer is then that SMS: the stages are the
        // iMessage's (probe H: the SMS's timings were printed as the iMessage's, all ok, for an address without iMessage).
        string? fellBackTo = null;
        if ((body["message"] as JsonObject ?? body)["fallbackFrom"]?.GetValue<string>() is { } iMessageId)
            (fellBackTo, id) = (id, iMessageId);
        Line($"message: {id}");
        if (fellBackTo is not null)
            Line($"fallback: the iMessage failed and the line tried the text again as SMS ({fellBackTo}: lineagent list shows how it went; Lines:N:FallbackToSms)");

        var seen = new HashSet<string>();
        var deadline = DateTimeOffset.UtcNow + StageTimeout;
        var start = DateTimeOffset.UtcNow - _clock.Elapsed;
        while (DateTimeOffset.UtcNow < deadline)
        {
            var (_, events) = await client.SendAsync(HttpMethod.Get, $"/api/messages/{id}/events", ct: ct);
            foreach (var e in events?.AsArray() ?? [])
            {
                var state = e!["status"]?.GetValue<string>();
                var eventCode = e["code"]?.GetValue<string>();
                var at = DateTimeOffset.Parse(e["at"]!.GetValue<string>(), CultureInfo.InvariantCulture) - start;
                var stage = (state, eventCode) switch
                {
                    (MessageStatus.Sending, "accepted") => "script accepted",
                    (_, "matched") => "chat.db row written",
                    (MessageStatus.Sent, _) => "sent",
                    (DeliveryState.Delivered, _) or (DeliveryState.Read, _) => "delivered",
                    (MessageStatus.Failed, _) => "failed",
                    _ => null,
                };
                if (stage is null || !seen.Add(stage))
                    continue;
                if (stage == "failed")
                {
                    var (_, m) = await client.SendAsync(HttpMethod.Get, $"/api/messages/{id}", ct: ct);
                    Stage("send", false, $"{m?["error"]?["code"]}: {m?["error"]?["message"]} (after {Seconds(at)})");
                    return;
                }
                Stage(stage, true, Seconds(at) + (stage == "chat.db row written" ? $" ({e["detail"]?.GetValue<string>()})" : ""));
            }
            if (seen.Contains("delivered"))
                break;
            await Task.Delay(250, ct);
        }
        foreach (var stage in new[] { "script accepted", "chat.db row written", "sent", "delivered" }.Where(s => !seen.Contains(s)))
            Stage(stage, false, $"not seen within {StageTimeout.TotalSeconds:0} s");

        var (_, availability) = await client.SendAsync(HttpMethod.Get, $"/api/availability?address={Uri.EscapeDataString(address)}", ct: ct);
        Stage("availability", availability?["imessage"]?.GetValue<string>() == "available",
            $"iMessage {availability?["imessage"]} (source {availability?["source"]})");
    }

    private static bool Permissions(JsonObject h, out string detail)
    {
        string S(string name) => h[name]?.GetValue<string>() ?? "unknown";
        detail = $"Messages {S("messages")}, Automation {S("automation")}, Full Disk Access {S("fullDiskAccess")}, iMessage account {S("iMessageAccount")}";
        return S("automation") != "denied" && S("fullDiskAccess") == "granted" && S("iMessageAccount") is "signed_in" or "unknown";
    }

    // ---- straight through the bridge ---------------------------------------------------------------

    private async Task ThroughBridgeAsync(string address, string text, CancellationToken ct)
    {
        Line($"path: straight through the bridge from this process (no agent answers at {client.BaseUrl}); the permissions tested are this process's");
        var options = config.GetSection(BridgeOptions.Section).Get<BridgeOptions>() ?? new BridgeOptions();
        var bridge = new MessagesBridge(Options.Create(options));
        if (!bridge.IsConfigured)
        {
            Stage("osascript", false, $"{bridge.OsascriptPath} does not exist (Messages needs macOS)");
            return;
        }
        var health = await new MessagesHealth(bridge, TimeProvider.System).CheckAsync(ct, fresh: true);
        var fda = health.FullDiskAccess == "granted";
        Stage("permissions", health.Automation != "denied" && fda,
            $"Messages {health.Messages}, Automation {health.Automation}, Full Disk Access {health.FullDiskAccess}, iMessage account {health.IMessageAccount}");
        if (!fda)
        {
            Stage("chat.db", false, "cannot read chat.db, so nothing could be confirmed: nothing was sent");
            return;
        }

        var baseline = bridge.Reader.MaxRowId();
        var handedAt = DateTimeOffset.UtcNow;
        _clock.Start();
        var result = await bridge.Scripts.SendAsync("iMessage", address, text, ct);
        if (!result.Accepted)
        {
            Stage("script accepted", false, $"{result.Last.ErrorKind} (step {result.Last.Step}, Apple error {result.Last.RawErrorNumber}): {result.Last.ErrorText}");
            return;
        }
        Stage("script accepted", true, Seconds(_clock.Elapsed));

        var row = await WaitAsync(() =>
        {
            var candidates = bridge.Reader.OutgoingTo(address, handedAt - TimeSpan.FromSeconds(2), baseline)
                .Where(r => r.IsPlainMessage || r.IsGhost).ToList();
            return DeliveryWatcher.Choose(candidates, text, requireText: false);
        }, ct);
        if (row is null)
        {
            Stage("chat.db row written", false, $"no row above ROWID {baseline} within {StageTimeout.TotalSeconds:0} s");
            return;
        }
        Stage("chat.db row written", true, $"{Seconds(_clock.Elapsed)} (ROWID {row.RowId}, {row.Service}, guid {row.Guid})");
        if (row.IsGhost)
        {
            Stage("sent", false, "Messages wrote an empty row outside any chat (the macOS 26 ghost row): not delivered");
            return;
        }

        var sent = await WaitAsync(() => Current(bridge, row.Guid) is { } r && (r.IsConfirmedSent || r.Error != 0) ? r : null, ct);
        if (sent is null || sent.Error != 0)
        {
            Stage("sent", false, sent is null ? $"not marked sent within {StageTimeout.TotalSeconds:0} s" : $"Messages error {sent.Error}");
            return;
        }
        Stage("sent", true, Seconds(_clock.Elapsed));
        var delivered = await WaitAsync(() => Current(bridge, row.Guid) is { IsDelivered: true } r ? r : null, ct);
        Stage("delivered", delivered is not null, delivered is null ? $"not marked delivered within {StageTimeout.TotalSeconds:0} s" : Seconds(_clock.Elapsed));

        var evidence = bridge.Reader.LastEvidenceFor(address);
        Stage("availability", evidence is { Error: 0 } && evidence.IsIMessage,
            evidence is null ? "chat.db holds no evidence for this address" : $"last evidence: {evidence.Service} row {evidence.RowId}, error {evidence.Error}");
    }

    private static ChatMessage? Current(MessagesBridge bridge, string guid) => bridge.Reader.ReadByGuids([guid]).FirstOrDefault();

    private static async Task<T?> WaitAsync<T>(Func<T?> probe, CancellationToken ct) where T : class
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StageTimeout)
        {
            if (probe() is { } value)
                return value;
            await Task.Delay(100, ct);
        }
        return null;
    }

    // ---- report ------------------------------------------------------------------------------------

    private static string Seconds(TimeSpan t) => $"{t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)} s";

    private void Stage(string name, bool ok, string detail)
    {
        if (!ok) _failed++;
        Line($"[{(ok ? " ok " : "FAIL")}] {name,-20} {detail}");
    }

    private void Line(string text)
    {
        output.WriteLine(text);
    }
}
