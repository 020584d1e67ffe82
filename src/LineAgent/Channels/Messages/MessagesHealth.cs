using LineAgent.Bridge.ChatDb;
using LineAgent.Bridge.Osascript;

namespace LineAgent.Channels.Messages;

/// <summary>Each part of the Messages path as a named state, as GET /api/lines and /api/status show it.</summary>
public sealed record MessagesHealthReport(
    string Messages,        // reachable | not_running | timed_out | not_installed | error
    string Automation,      // granted | denied | unknown
    string IMessageAccount, // signed_in | connecting | signed_out | missing | unknown
    string SmsAccount,      // available | missing | unknown
    string FullDiskAccess,  // granted | denied | missing_db | damaged_db | unknown
    string? Detail,
    DateTimeOffset CheckedAt)
{
    /// <summary>RCS (macOS 15+): available | missing | unknown. Shown in line health; the agent does not send RCS itself.</summary>
    public string RcsAccount { get; init; } = "unknown";

    public bool CanSendIMessage => Messages == "reachable" && IMessageAccount == "signed_in";
    public bool CanSendSms => Messages == "reachable" && SmsAccount == "available";
    public bool CanConfirm => FullDiskAccess == "granted";

    /// <summary>Why <paramref name="type"/> cannot go out, or null when it can.</summary>
    public string? Problem(string type)
    {
        if (Automation == "denied")
            return "Automation permission for Messages is missing: System Settings > Privacy & Security > Automation > allow the agent to control Messages.";
        if (Messages == "not_installed")
            return Detail ?? "osascript is not available.";
        if (Messages == "not_running")
            return "Messages is not running: open Messages (the agent does not launch it for a health check; a send launches it).";
        // The first Apple event waits for the Automation consent dialog (BRIDGE.md), so a timeout may be that prompt unanswered.
        if (Messages == "timed_out")
            return $"Messages did not answer{(Detail is null ? "" : $" ({Detail})")}. If macOS is asking whether the agent may control Messages, " +
                   "allow it (System Settings > Privacy & Security > Automation); otherwise Messages is hung.";
        if (Messages != "reachable")
            return $"Messages is {Messages.Replace('_', ' ')}{(Detail is null ? "" : $": {Detail}")}.";
        if (type == LineAgent.Messages.MessageType.IMessage && IMessageAccount != "signed_in")
            return IMessageAccount == "connecting"
                ? "The iMessage account in Messages is still connecting (after Messages starts, a wake or a network change); it usually takes seconds."
                : $"No signed-in iMessage account in Messages ({IMessageAccount.Replace('_', ' ')}).";
        if (type == LineAgent.Messages.MessageType.Sms && SmsAccount != "available")
            return "No SMS account in Messages: turn on Text Message Forwarding for this Mac on the iPhone.";
        return ChatDbProblem ?? (FullDiskAccess == "granted" ? null
            // Busy, locked or damaged: not a permission, so no advice to grant one.
            : "chat.db could not be read (it may be locked or damaged): sends cannot be confirmed until it can.");
    }

    /// <summary>
    /// Why <paramref name="type"/> cannot go out until someone changes something on this Mac (an account signed out, a
    /// permission missing, no chat.db), or null. Not for a state that may pass by itself or by the send: Messages not
    /// running (a send launches it), timed out (it may be the consent prompt), iMessage still connecting, a chat.db that is
    /// busy for the moment.
    /// `auto` skips a type with such a problem.
    /// </summary>
    public string? LastingProblem(string type)
    {
        if (Automation == "denied" || Messages == "not_installed")
            return Problem(type);
        if (ChatDbProblem is { } chatDb)
            return chatDb;
        if (Messages != "reachable")
            return null;
        return (type == LineAgent.Messages.MessageType.IMessage && IMessageAccount is not ("signed_in" or "connecting"))
               || (type == LineAgent.Messages.MessageType.Sms && SmsAccount != "available")
            ? Problem(type)
            : null;
    }

    private string? ChatDbProblem => FullDiskAccess switch
    {
        "denied" => "chat.db cannot be read (denied): sends cannot be confirmed, so none is made. Give the agent Full Disk Access.",
        "missing_db" => "chat.db does not exist yet: sends cannot be confirmed, so none is made. Open Messages once and sign in.",
        "damaged_db" => "chat.db is damaged (SQLite cannot read it as a database): sends cannot be confirmed, so none is made. Check that " +
                        "Bridge:ChatDbPath is Messages' chat.db; the agent's own database is not affected.",
        _ => null,
    };
}

/// <summary>
/// Runs status.applescript and probes chat.db; cached for Bridge:HealthCacheFor so the API stays cheap. One check runs at
/// a time, and every caller that needs a new answer meanwhile waits for that one (status.applescript is killed after
/// MessagesScripts.StatusHardTimeout, 30 s, when Messages hangs). A check in flight at shutdown is cancelled.
/// </summary>
public sealed class MessagesHealth(MessagesBridge bridge, TimeProvider time) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task<MessagesHealthReport>? _inFlight;
    private DateTimeOffset _inFlightSince;
    private MessagesHealthReport? _cached;

    public async Task<MessagesHealthReport> CheckAsync(CancellationToken ct, bool fresh = false)
    {
        if (!fresh && Fresh() is { } c)
            return c;
        return await Check(fresh).WaitAsync(ct);
    }

    /// <summary>
    /// The health as a request may wait for it: the cached answer while it is fresh, else the check in flight (or a new
    /// one), but no longer than <paramref name="wait"/>; past that, the last answer of any age, or null when there has been
    /// none. The check goes on and fills the cache.
    /// </summary>
    public async Task<MessagesHealthReport?> CheckWithinAsync(TimeSpan wait, CancellationToken ct)
    {
        if (Fresh() is { } c)
            return c;
        var last = _cached;
        try
        {
            return await Check(fresh: false).WaitAsync(wait, time, ct);
        }
        catch (TimeoutException)
        {
            return last;
        }
    }

    /// <summary>A check that has run this long without an answer is reported as Messages not answering, not waited on.</summary>
    internal static readonly TimeSpan SlowAfter = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The health as a view shows it (GET /api/lines, /api/status): the cached answer while it is fresh, else the check's
    /// answer if it comes within Bridge:HealthWaitForViews of the check's start (one answer that asks several times waits
    /// that long in all). Past that, the last answer while the check has run less than <see cref="SlowAfter"/> (a cold
    /// osascript after a wake is slow, not hung: review), then `timed_out`. The check goes on and fills the cache. Before, a
    /// hung Messages held /api/status for the status script's 20-30 s, and the menu bar (5 s) said the agent was not running
    /// (black-box probe).
    /// </summary>
    public async Task<MessagesHealthReport> CheckForViewAsync(CancellationToken ct)
    {
        if (Fresh() is { } c)
            return c;
        var check = Check(fresh: false);
        DateTimeOffset since;
        lock (_lock)
            since = _inFlightSince;
        if (await HealthWait.WithinAsync(check, since, bridge.Options.HealthWaitForViews, time, ct) is { } answer)
            return answer;
        var now = time.GetUtcNow();
        if (_cached is { } last && now - since < SlowAfter)
            return last;
        return new MessagesHealthReport("timed_out", "unknown", "unknown", "unknown", _cached?.FullDiskAccess ?? "unknown",
            $"no answer to the health check for {Math.Max(1, (int)(now - since).TotalSeconds)} s; still checking", now);
    }

    /// <summary>Forget the cached answer (after a send failed in a way that says health changed).</summary>
    public void Invalidate() => _cached = null;

    // Cancelled, not disposed: a request that asks during shutdown gets a cancelled check, not an ObjectDisposedException.
    public void Dispose() => _stopping.Cancel();

    private MessagesHealthReport? Fresh() =>
        _cached is { } c && time.GetUtcNow() - c.CheckedAt < bridge.Options.HealthCacheFor ? c : null;

    /// <summary>The check in flight, else a new one (else, unless <paramref name="fresh"/>, a cached answer that turned fresh).</summary>
    private Task<MessagesHealthReport> Check(bool fresh)
    {
        lock (_lock)
        {
            if (_inFlight is { } running)
                return running;
            if (!fresh && Fresh() is { } c)
                return Task.FromResult(c);
            _inFlightSince = time.GetUtcNow();
            return _inFlight = RunAsync();
        }
    }

    private async Task<MessagesHealthReport> RunAsync()
    {
        // Off the caller's lock: the rest runs on the pool, and clears _inFlight only after Check has set it.
        await Task.Yield();
        try
        {
            return _cached = await ProbeAsync(_stopping.Token);
        }
        finally
        {
            lock (_lock)
                _inFlight = null;
        }
    }

    private async Task<MessagesHealthReport> ProbeAsync(CancellationToken ct)
    {
        var fda = (await Task.Run(bridge.Reader.CheckAccess, ct)) switch
        {
            ChatDbAccess.Ok => "granted",
            ChatDbAccess.Denied => "denied",
            ChatDbAccess.Missing => "missing_db",
            ChatDbAccess.Damaged => "damaged_db",
            _ => "unknown",
        };
        if (!bridge.IsConfigured)
            return new("not_installed", "unknown", "unknown", "unknown", fda, $"{bridge.OsascriptPath} does not exist (Messages needs macOS)", time.GetUtcNow());

        var status = await bridge.Scripts.StatusAsync(ct);
        var run = status.Run;
        if (!run.Succeeded)
        {
            var (messages, automation) = run.ErrorKind switch
            {
                OsaErrorKind.NotAuthorized => ("reachable", "denied"),
                OsaErrorKind.NotRunning => ("not_running", "unknown"),
                OsaErrorKind.TimedOut or OsaErrorKind.AppleEventTimeout => ("timed_out", "unknown"),
                OsaErrorKind.LaunchFailed => ("not_installed", "unknown"),
                _ => ("error", "unknown"),
            };
            return new(messages, automation, "unknown", "unknown", fda, run.ErrorText, time.GetUtcNow());
        }
        if (!status.Running)
            // Not launched on purpose: the user may have quit it. Whether Automation is granted is unknown until it runs.
            return new("not_running", "unknown", "unknown", "unknown", fda, "Messages is not running", time.GetUtcNow());
        // `connecting` (for a few seconds after Messages starts, after wake or a network change) passes by itself; a send takes
        // the account whatever its connection status.
        var imessage = status.Account("iMessage") is { } im
            ? im.IsConnected ? "signed_in"
            : im.Enabled && im.ConnectionStatus.Equals("connecting", StringComparison.OrdinalIgnoreCase) ? "connecting"
            : "signed_out"
            : "missing";
        var sms = status.Account("SMS") is { } sm ? sm.Enabled ? "available" : "missing" : "missing";
        var rcs = status.Account("RCS") is { } rc ? rc.Enabled ? "available" : "missing" : "missing";
        return new("reachable", "granted", imessage, sms, fda, null, time.GetUtcNow()) { RcsAccount = rcs };
    }
}
