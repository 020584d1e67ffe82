namespace LineAgent.Messages;

/// <summary>
/// Why a message failed (<c>error.code</c>): every code the agent writes, in one place. Channel-specific
/// codes are grouped by channel; the raw provider code goes to <c>error.channelCode</c>.
/// </summary>
public static class FailureCodes
{
    // Any channel
    public const string Suppressed = "suppressed";
    /// <summary>It may have gone out; not resent automatically (retry needs force).</summary>
    public const string Unconfirmed = "unconfirmed";
    /// <summary>The agent stopped while sending and the channel cannot tell; not resent.</summary>
    public const string Interrupted = "interrupted";
    /// <summary>Pending in a restored backup and due before the restore: it may have gone out after the backup; not resent.</summary>
    public const string Restored = "restored";
    public const string MissedSchedule = "missed_schedule";
    /// <summary>The recipient's hours never fall within the line's send window: it would wait for ever (refused on accept; failed on dispatch when a change made it so).</summary>
    public const string WindowNeverOpen = "window_never_open";
    public const string LineNotFound = "line_not_found";
    /// <summary>The channel threw after the hand-off; it may have gone out, so it is not resent (retry needs force).</summary>
    public const string ChannelError = "channel_error";
    public const string ChannelUnavailable = "channel_unavailable";

    // Messages.app
    public const string IMessageUnavailable = "imessage_unavailable";
    public const string NotDeliverable = "not_deliverable";
    public const string MessagesError = "messages_error";
    public const string GhostRow = "ghost_row";
    public const string AutomationDenied = "automation_denied";
    public const string SmsUnavailable = "sms_unavailable";
    public const string RcsUnavailable = "rcs_unavailable";
    public const string IMessageAccountMissing = "imessage_account_missing";
    public const string RecipientUnresolvable = "recipient_unresolvable";
    public const string MessagesNotRunning = "messages_not_running";
    public const string MessagesTimeout = "messages_timeout";
    public const string InvalidService = "invalid_service";
    /// <summary>chat.db is missing or not readable (no Full Disk Access): a send could not be confirmed, so none is made.</summary>
    public const string ChatDbUnavailable = "chatdb_unavailable";

    // SMTP
    public const string SmtpUnreachable = "smtp_unreachable";
    public const string SmtpTemporaryFailure = "smtp_temporary_failure";
    public const string SmtpRejected = "smtp_rejected";
    public const string SmtpAuthFailed = "smtp_auth_failed";
    /// <summary>The server does not offer what Email:Smtp asks for (STARTTLS, AUTH): refused before anything was sent.</summary>
    public const string SmtpUnsupported = "smtp_unsupported";
    public const string InvalidSender = "invalid_sender";
    public const string InvalidRecipient = "invalid_recipient";

    // Twilio
    public const string TwilioRateLimited = "twilio_rate_limited";
    public const string TwilioUnreachable = "twilio_unreachable";
    public const string TwilioRejected = "twilio_rejected";
    public const string TwilioFailed = "twilio_failed";
    public const string TwilioAuthFailed = "twilio_auth_failed";
    /// <summary>
    /// Twilio:BaseUrl answered 404 or 405 with a page that is not Twilio's JSON: the Messages API is not there (a wrong
    /// BaseUrl, a proxy without that route), so every message would fail the same way; nothing was sent.
    /// </summary>
    public const string TwilioEndpointNotFound = "twilio_endpoint_not_found";

    /// <summary>Twilio's own final status (undelivered, failed, canceled) as a code.</summary>
    public static string TwilioStatus(string status) => $"twilio_{status}";

    /// <summary>A failure the agent may not resend blindly (it may have gone out).</summary>
    /// <remarks><see cref="ChannelError"/> is a channel that threw after the hand-off: what it did is not known.</remarks>
    public static bool MaybeSent(string? code) => code is Unconfirmed or Interrupted or ChannelError or Restored;
}
