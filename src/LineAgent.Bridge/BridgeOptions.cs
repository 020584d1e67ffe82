namespace LineAgent.Bridge;

/// <summary>`Bridge:*` settings: how the agent reaches Messages.app and its database.</summary>
public sealed class BridgeOptions
{
    public const string Section = "Bridge";

    /// <summary>The program that runs the scripts: osascript, or a stand-in with the same contract.</summary>
    public string OsascriptPath { get; set; } = "/usr/bin/osascript";

    /// <summary>Messages' database, opened read-only.</summary>
    public string ChatDbPath { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "Library", "Messages", "chat.db");

    /// <summary>Folder of send.applescript and status.applescript; empty = Scripts/ next to the agent.</summary>
    public string? ScriptsDir { get; set; }

    /// <summary>
    /// Hard limit for one send; the process tree is killed after it. Longer than send.applescript's own
    /// `with timeout of 120 seconds` (Apple events' default), as imsg kills at 150 s: the first Automation
    /// consent dialog and a cold start of Messages hold the first send for longer than 30 s.
    /// </summary>
    public TimeSpan ScriptTimeout { get; set; } = TimeSpan.FromSeconds(150);

    /// <summary>A send not confirmed by chat.db within this fails with `unconfirmed` (never resent automatically).</summary>
    public TimeSpan ConfirmTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long delivered/read receipts are watched for after a send.</summary>
    public TimeSpan TrackDeliveryFor { get; set; } = TimeSpan.FromDays(3);

    /// <summary>Quiet time after a chat.db change before reading (Messages writes in bursts).</summary>
    public TimeSpan WatchDebounce { get; set; } = TimeSpan.FromMilliseconds(150);

    /// <summary>Fallback poll of chat.db (file watchers go quiet after WAL checkpoints).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Optional executable: takes an address, prints imessage, sms or unknown.</summary>
    public string? AvailabilityProbe { get; set; }

    /// <summary>How long an availability answer is trusted.</summary>
    public TimeSpan AvailabilityTtl { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How long line health (status.applescript) is cached.</summary>
    public TimeSpan HealthCacheFor { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long GET /api/status and /api/lines wait for a health check that is not cached before they answer that Messages
    /// does not answer (`timed_out`), or that SMTP's or Twilio's check has not answered (`degraded`); the menu bar gives the
    /// agent 5 s.
    /// </summary>
    public TimeSpan HealthWaitForViews { get; set; } = TimeSpan.FromSeconds(2);

    public string ResolveScriptsDir() =>
        string.IsNullOrWhiteSpace(ScriptsDir) ? Path.Combine(AppContext.BaseDirectory, "Scripts") : ScriptsDir;

    public static string ExpandHome(string path) =>
        path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..])
            : path;
}
