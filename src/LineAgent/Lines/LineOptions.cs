using System.ComponentModel.DataAnnotations;

namespace LineAgent.Lines;

/// <summary>One sending line (a Mac's Apple ID, its SMS path and its email identity).</summary>
public sealed class LineOptions
{
    [Required, RegularExpression("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string Id { get; set; } = "";

    /// <summary>Where this line was configured (Lines:0, Lines:mac), for messages that name the setting; not bound.</summary>
    internal string ConfigPath { get; set; } = "Lines";
    public string? Name { get; set; }
    public bool Active { get; set; } = true;
    public IMessageLineOptions IMessage { get; set; } = new();
    public SmsLineOptions Sms { get; set; } = new();
    public EmailLineOptions Email { get; set; } = new();
    /// <summary>An iMessage that fails because the number has no iMessage is re-sent as SMS.</summary>
    public bool FallbackToSms { get; set; } = true;
    public PacingOptions Pacing { get; set; } = new();
}

public sealed class IMessageLineOptions
{
    public bool Enabled { get; set; } = true;
}

public sealed class SmsLineOptions
{
    public const string ViaMessages = "messages";
    public const string ViaTwilio = "twilio";

    /// <summary>`messages` (iPhone text forwarding) or `twilio` (checked by LinesOptionsValidator).</summary>
    public string Via { get; set; } = ViaMessages;
    public bool Enabled { get; set; } = true;
    /// <summary>Twilio sender number (E.164) when Via = twilio.</summary>
    public string? From { get; set; }
    public string? MessagingServiceSid { get; set; }
}

public sealed class EmailLineOptions
{
    /// <summary>"Display Name &lt;address@example.com&gt;" or a bare address; no From = no email on this line.</summary>
    public string? From { get; set; }
    public string? DefaultSubject { get; set; }
}

/// <summary>
/// Defaults are meant for a new Apple ID: well under the ~200 iMessages/hour reported to get accounts
/// flagged, at the low end of the 20-50 new conversations per line per day providers allow, irregular
/// gaps rather than a machine's fixed beat, and no texts at night. See README for the reasons.
/// </summary>
public sealed class PacingOptions
{
    public bool Enabled { get; set; } = true;
    public TimeSpan MinGap { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan Jitter { get; set; } = TimeSpan.FromSeconds(30);
    public int MaxPerHour { get; set; } = 40;
    public int MaxPerDay { get; set; } = 200;
    public int MaxNewConversationsPerDay { get; set; } = 20;
    public SendWindowOptions Window { get; set; } = new() { From = "08:00", To = "21:00" };
    /// <summary>
    /// Hours in the recipient's own time zone (From/To, HH:mm) for every message of this line while its pacing
    /// applies; a send's own recipientWindow wins. Empty = none.
    /// </summary>
    public SendWindowOptions RecipientWindow { get; set; } = new();
}

public sealed class SendWindowOptions
{
    /// <summary>Local start of the send window, HH:mm; empty = all day.</summary>
    public string? From { get; set; }
    /// <summary>Local end of the send window, HH:mm.</summary>
    public string? To { get; set; }
    /// <summary>IANA time zone of the window; empty = the Mac's local zone.</summary>
    public string? TimeZone { get; set; }
    /// <summary>Days the window is open, e.g. ["Monday", ..., "Friday"]; empty = every day.</summary>
    public List<DayOfWeek> Days { get; set; } = [];
}
