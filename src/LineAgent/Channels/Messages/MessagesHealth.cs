using LineAgent.Bridge.ChatDb;
using LineAgent.Bridge.Osascript;

namespace LineAgent.Channels.Messages;

/// <summary>Each part of the Messages path as a named state, as GET /api/lines and /api/status show it.</summary>
public sealed record MessagesHealthReport(
    string Messages,        // reachable | not_running | timed_out | not_installed | error
    string Automation,      // granted | denied | unknown
    string IMessageAccount, // signed_in | signed_out | missing | unknown
    string SmsAccount,      // available | missing | unknown
    string FullDiskAccess,  // granted | denied | missing_db | unknown
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
            return $"No signed-in iMessage account in Messages ({IMessageAccount.Replace('_', ' ')}).";
        if (type == LineAgent.Messages.MessageType.Sms && SmsAccount != "available")
            return "No SMS account in Messages: turn on Text Message Forwarding for this Mac on the iPhone.";
        return ChatDbProblem ?? (FullDiskAccess == "granted" ? null
            // Busy, locked or damaged: not a permission, so no advice to grant one.
            : "chat.db could not be read (it may be locked or damaged): sends cannot be confirmed until it can.");
    }

    /// <summary>
    /// Why <paramref name="type"/> cannot go out until someone changes something on this Mac (an account signed out, a
    /// permission missing, no chat.db), or null. Not for a state that may pass by itself or by the send: Messages not
    /// running (a send launches it), timed out (it may be the consent prompt), a chat.db that is busy for the moment.
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
        return (type == LineAgent.Messages.MessageType.IMessage && IMessageAccount != "signed_in")
               || (type == LineAgent.Messages.MessageType.Sms && SmsAccount != "available")
            ? Problem(type)
            : null;
    }

    private string? ChatDbProblem => FullDiskAccess switch
    {
        "denied" => "chat.db cannot be read (denied): sends cannot be confirmed. Give the agent Full Disk Access.",
        "missing_db" => "chat.db does not exist yet: sends cannot be confirmed. Open Messages once and sign in.",
        _ => null,
    };
}

/// <summary>Runs status.applescript and probes chat.db; cached for Bridge:HealthCacheFor so the API stays cheap.</summary>
public sealed class MessagesHealth(MessagesBridge bridge, TimeProvider time)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private MessagesHealthReport? _cached;

    public async Task<MessagesHealthReport> CheckAsync(CancellationToken ct, bool fresh = false)
    {
        var now = time.GetUtcNow();
        if (!fresh && _cached is { } c && now - c.CheckedAt < bridge.Options.HealthCacheFor)
            return c;
        await _gate.WaitAsync(ct);
        try
        {
            if (!fresh && _cached is { } again && time.GetUtcNow() - again.CheckedAt < bridge.Options.HealthCacheFor)
                return again;
            _cached = await ProbeAsync(ct);
            return _cached;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The health as a request may wait for it: the cached answer while it is fresh, else a new check, but no longer than
    /// <paramref name="wait"/> (a hung Messages holds status.applescript for up to Bridge:ScriptTimeout); past that, the
    /// last answer of any age, or null when there has been none. The check goes on and fills the cache.
    /// </summary>
    public async Task<MessagesHealthReport?> CheckWithinAsync(TimeSpan wait, CancellationToken ct)
    {
        if (_cached is { } c && time.GetUtcNow() - c.CheckedAt < bridge.Options.HealthCacheFor)
            return c;
        var last = _cached;
        var check = CheckAsync(CancellationToken.None);
        try
        {
            return await check.WaitAsync(wait, time, ct);
        }
        catch (TimeoutException)
        {
            return last;
        }
    }

    /// <summary>Forget the cached answer (after a send failed in a way that says health changed).</summary>
    public void Invalidate() => _cached = null;

    private async Task<MessagesHealthReport> ProbeAsync(CancellationToken ct)
    {
        var fda = (await Task.Run(bridge.Reader.CheckAccess, ct)) switch
        {
            ChatDbAccess.Ok => "granted",
            ChatDbAccess.Denied => "denied",
            ChatDbAccess.Missing => "missing_db",
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
        var imessage = status.Account("iMessage") is { } im ? im.IsConnected ? "signed_in" : "signed_out" : "missing";
        var sms = status.Account("SMS") is { } sm ? sm.Enabled ? "available" : "missing" : "missing";
        var rcs = status.Account("RCS") is { } rc ? rc.Enabled ? "available" : "missing" : "missing";
        return new("reachable", "granted", imessage, sms, fda, null, time.GetUtcNow()) { RcsAccount = rcs };
    }
}
