namespace LineAgent.Bridge.Osascript;

/// <summary>A Messages account as status.applescript reports it.</summary>
public sealed record MessagesAccount(string ServiceType, string Id, bool Enabled, string ConnectionStatus)
{
    public bool IsConnected => Enabled && ConnectionStatus.Equals("connected", StringComparison.OrdinalIgnoreCase);
}

public sealed record MessagesStatus(OsascriptResult Run, IReadOnlyList<MessagesAccount> Accounts)
{
    public MessagesAccount? Account(string serviceType) =>
        Accounts.FirstOrDefault(a => a.ServiceType.Equals(serviceType, StringComparison.OrdinalIgnoreCase) && a.IsConnected)
        ?? Accounts.FirstOrDefault(a => a.ServiceType.Equals(serviceType, StringComparison.OrdinalIgnoreCase));
}

/// <summary>The outcome of asking Messages to send: accepted (not delivery!) or refused, and whether `send` was reached.</summary>
public sealed record BridgeSendResult(OsascriptResult Last, int Attempts, bool RestartedMessages)
{
    public bool Accepted => Last.Succeeded;

    /// <summary>True when no attempt got as far as `send`: nothing can have left the Mac.</summary>
    public bool ProvenNotSent { get; init; }
}

/// <summary>
/// The scripts of the bridge contract: send.applescript &lt;serviceType&gt; &lt;recipient&gt; &lt;text&gt;,
/// status.applescript, and restart-messages.applescript (quit and reopen Messages).
/// </summary>
public sealed class MessagesScripts(OsascriptRunner runner, string scriptsDir)
{
    public const string Send = "send.applescript";
    public const string Status = "status.applescript";
    public const string Restart = "restart-messages.applescript";

    public static readonly string[] ServiceTypes = ["iMessage", "SMS", "RCS"];

    public string ScriptPath(string name) => Path.Combine(scriptsDir, name);

    /// <summary>
    /// Asks Messages to send. On -1712 or a timeout, Messages is quit and reopened once, and the send is
    /// retried only if the first attempt provably did not reach `send` (its marker is absent).
    /// </summary>
    public async Task<BridgeSendResult> SendAsync(string serviceType, string recipient, string text, CancellationToken ct)
    {
        if (!ServiceTypes.Contains(serviceType, StringComparer.Ordinal))
            throw new ArgumentOutOfRangeException(nameof(serviceType), serviceType, "iMessage, SMS or RCS");
        var first = await runner.RunAsync(ScriptPath(Send), [serviceType, recipient, text], ct);
        if (first.Succeeded)
            return new BridgeSendResult(first, 1, false);
        if (first.ErrorKind is not (OsaErrorKind.AppleEventTimeout or OsaErrorKind.TimedOut))
            return new BridgeSendResult(first, 1, false) { ProvenNotSent = !first.ReachedSend };

        await RestartMessagesAsync(ct);
        if (first.ReachedSend)
            return new BridgeSendResult(first, 1, true) { ProvenNotSent = false };
        var second = await runner.RunAsync(ScriptPath(Send), [serviceType, recipient, text], ct);
        return new BridgeSendResult(second, 2, true) { ProvenNotSent = !second.Succeeded && !second.ReachedSend };
    }

    public Task<OsascriptResult> RestartMessagesAsync(CancellationToken ct) => runner.RunAsync(ScriptPath(Restart), [], ct);

    public async Task<MessagesStatus> StatusAsync(CancellationToken ct)
    {
        var run = await runner.RunAsync(ScriptPath(Status), [], ct);
        return new MessagesStatus(run, run.Succeeded ? ParseAccounts(run.Stdout) : []);
    }

    public static IReadOnlyList<MessagesAccount> ParseAccounts(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split('\t'))
            .Where(f => f.Length >= 4)
            .Select(f => new MessagesAccount(f[0], f[1], f[2].Equals("true", StringComparison.OrdinalIgnoreCase), f[3]))
            .ToList();
}
