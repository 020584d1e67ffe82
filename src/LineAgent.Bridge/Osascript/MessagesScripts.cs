namespace LineAgent.Bridge.Osascript;

/// <summary>A Messages account as status.applescript reports it.</summary>
public sealed record MessagesAccount(string ServiceType, string Id, bool Enabled, string ConnectionStatus)
{
    public bool IsConnected => Enabled && ConnectionStatus.Equals("connected", StringComparison.OrdinalIgnoreCase);
}

public sealed record MessagesStatus(OsascriptResult Run, IReadOnlyList<MessagesAccount> Accounts)
{
    /// <summary>False when status.applescript found Messages not running (and left it so).</summary>
    public bool Running { get; init; } = true;

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

    /// <summary>The iMessage account's connection status after a restart (connected, connecting, disconnected), if restarted.</summary>
    public string? StatusAfterRestart { get; init; }

    /// <summary>Why the send was not tried again after the restart (the caller's check before a retry), if it was not.</summary>
    public string? RetryWithheld { get; init; }
}

/// <summary>
/// The scripts of the bridge contract: send.applescript &lt;serviceType&gt; &lt;recipient&gt; &lt;text&gt;,
/// status.applescript, and restart-messages.applescript (kill Messages by pid, reopen it, wait for the account).
/// </summary>
public sealed class MessagesScripts(OsascriptRunner runner, string scriptsDir)
{
    public const string Send = "send.applescript";
    public const string Status = "status.applescript";
    public const string Restart = "restart-messages.applescript";

    /// <summary>What status.applescript prints instead of accounts when Messages is not running (it does not launch it).</summary>
    public const string NotRunning = "not_running";

    /// <summary>status.applescript waits 20 s for Messages (`with timeout`); killed after this.</summary>
    public static readonly TimeSpan StatusHardTimeout = TimeSpan.FromSeconds(30);

    /// <summary>restart-messages.applescript waits up to 60 s for the account to connect; killed after this.</summary>
    public static readonly TimeSpan RestartHardTimeout = TimeSpan.FromSeconds(90);

    public static readonly string[] ServiceTypes = ["iMessage", "SMS", "RCS"];

    public string ScriptPath(string name) => Path.Combine(scriptsDir, name);

    /// <summary>
    /// Asks Messages to send. When Messages is wedged (-1712, our hard timeout) or went away mid-call (-600/-609),
    /// it is restarted once, and the send is retried only if the first attempt provably did not reach `send`
    /// (its marker is absent) and the account is connected again, and <paramref name="beforeRetry"/> gives no reason not to
    /// (the recipient may have opted out while the first attempt hung).
    /// </summary>
    public async Task<BridgeSendResult> SendAsync(string serviceType, string recipient, string text, CancellationToken ct,
        Func<CancellationToken, Task<string?>>? beforeRetry = null)
    {
        if (!ServiceTypes.Contains(serviceType, StringComparer.Ordinal))
            throw new ArgumentOutOfRangeException(nameof(serviceType), serviceType, "iMessage, SMS or RCS");
        var first = await runner.RunAsync(ScriptPath(Send), [serviceType, recipient, text], ct);
        if (first.Succeeded)
            return new BridgeSendResult(first, 1, false);
        if (first.ErrorKind is not (OsaErrorKind.AppleEventTimeout or OsaErrorKind.TimedOut or OsaErrorKind.NotRunning))
            return new BridgeSendResult(first, 1, false) { ProvenNotSent = !first.ReachedSend };

        var status = await RestartMessagesAsync(ct);
        if (first.ReachedSend)
            return new BridgeSendResult(first, 1, true) { ProvenNotSent = false, StatusAfterRestart = status };
        if (status != "connected")
            return new BridgeSendResult(first, 1, true) { ProvenNotSent = true, StatusAfterRestart = status };
        if (beforeRetry is not null && await beforeRetry(ct) is { } withheld)
            return new BridgeSendResult(first, 1, true) { ProvenNotSent = true, StatusAfterRestart = status, RetryWithheld = withheld };
        var second = await runner.RunAsync(ScriptPath(Send), [serviceType, recipient, text], ct);
        return new BridgeSendResult(second, 2, true) { ProvenNotSent = !second.Succeeded && !second.ReachedSend, StatusAfterRestart = status };
    }

    /// <summary>Kills Messages by pid, reopens it and waits for the iMessage account; returns its connection status.</summary>
    public async Task<string> RestartMessagesAsync(CancellationToken ct)
    {
        var run = await runner.RunAsync(ScriptPath(Restart), [], ct, RestartHardTimeout);
        var status = run.Stdout.Trim();
        return run.Succeeded && status.Length > 0 ? status : $"unknown ({run.ErrorText})";
    }

    public async Task<MessagesStatus> StatusAsync(CancellationToken ct)
    {
        var run = await runner.RunAsync(ScriptPath(Status), [], ct, StatusHardTimeout);
        var notRunning = run.Succeeded && run.Stdout.Trim() == NotRunning;
        return new MessagesStatus(run, run.Succeeded && !notRunning ? ParseAccounts(run.Stdout) : []) { Running = !notRunning };
    }

    public static IReadOnlyList<MessagesAccount> ParseAccounts(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split('\t'))
            .Where(f => f.Length >= 4)
            .Select(f => new MessagesAccount(f[0], f[1], f[2].Equals("true", StringComparison.OrdinalIgnoreCase), f[3]))
            .ToList();
}
