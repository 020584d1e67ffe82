using LineAgent.Storage;

namespace LineAgent.Messages;

public static class MessageStatus
{
    public const string Scheduled = "scheduled";
    public const string Queued = "queued";
    public const string Sending = "sending";
    public const string Sent = "sent";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    /// <summary>Inbound messages (replies).</summary>
    public const string Received = "received";

    public static readonly string[] All = [Scheduled, Queued, Sending, Sent, Failed, Cancelled, Received];
    public static bool IsPending(string s) => s is Scheduled or Queued;
    public static bool IsTerminal(string s) => s is Sent or Failed or Cancelled or Received;
}

public static class MessageType
{
    public const string IMessage = "imessage";
    public const string Sms = "sms";
    public const string Email = "email";
    public const string Auto = "auto";

    public static readonly string[] Concrete = [IMessage, Sms, Email];
    public static readonly string[] Requestable = [Auto, IMessage, Sms, Email];
}

public static class Delivery
{
    public const string Unknown = "unknown";
    public const string Delivered = "delivered";
    public const string Read = "read";
    public const string NotDelivered = "not_delivered";
}

/// <summary>A row of the messages table (snake_case columns map by name).</summary>
public sealed class MessageRow
{
    public long Seq { get; set; }
    public string Id { get; set; } = "";
    public string Direction { get; set; } = "outbound";
    public string Content { get; set; } = "";
    public string? Subject { get; set; }
    public string Type { get; set; } = "";
    public string RequestedType { get; set; } = "";
    public string Status { get; set; } = "";
    public string Delivery { get; set; } = Messages.Delivery.Unknown;
    public string LineId { get; set; } = "";
    public string? LeadId { get; set; }
    public string? BatchId { get; set; }
    public string? RecipientPhone { get; set; }
    public string? RecipientEmail { get; set; }
    public string? RecipientName { get; set; }
    public long? ScheduledAt { get; set; }
    public string? ScheduleTimeZone { get; set; }
    public long DueAt { get; set; }
    public long? NotBefore { get; set; }
    public long? SentAt { get; set; }
    public long? DeliveredAt { get; set; }
    public long? ReadAt { get; set; }
    public long CreatedAt { get; set; }
    public long UpdatedAt { get; set; }
    public string? FallbackFrom { get; set; }
    public string? RetryOf { get; set; }
    public string? ReplyTo { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public bool DryRun { get; set; }
    public string? Claim { get; set; }
    public long? ClaimedAt { get; set; }
    public long? HandedAt { get; set; }
    public string? Channel { get; set; }
    public string? ChannelRef { get; set; }
    /// <summary>The channel's position just before the hand-off (chat.db MAX(ROWID) for Messages).</summary>
    public long? ChannelBaseline { get; set; }
    /// <summary>
    /// chat.db's MAX(ROWID) read just before the Messages script ran, on disk before the script started (so a send that a
    /// crash cut off has it too, unlike <see cref="ChannelBaseline"/>, written with the outcome); <see cref="BaselineUnread"/>
    /// when it could not be read. Null while this attempt's script has not started (the hand-off clears it).
    /// </summary>
    public long? ScriptBaseline { get; set; }

    /// <summary>
    /// <see cref="ScriptBaseline"/> of a script that may have started without a position to place its row by: chat.db's
    /// MAX(ROWID) could not be read (busy), or the send was in flight under a build that did not store it (migration 016)
    /// or in a restored backup (DatabaseRestore).
    /// </summary>
    public const long BaselineUnread = -1;

    /// <summary>The stored script baseline, when there is one to place rows by.</summary>
    public long? ScriptPosition => ScriptBaseline is >= 0 and var b ? b : null;
    /// <summary>When the channel accepted the send (its confirmation comes later); null until then.</summary>
    public long? AcceptedAt { get; set; }
    public long? ChannelError { get; set; }
    public string? FallbackTo { get; set; }
    public long? TrackUntil { get; set; }
    /// <summary>A reply from the recipient after <see cref="CreatedAt"/> cancels it while pending.</summary>
    public bool StopOnReply { get; set; }
    public string? SequenceId { get; set; }
    public int? SequenceStep { get; set; }
    /// <summary>Milliseconds after the previous step's sent_at (steps after the first).</summary>
    public long? FollowUpAfter { get; set; }
    /// <summary>"HH:mm-HH:mm" in the recipient's zone, given on the send.</summary>
    public string? RecipientWindow { get; set; }
    public string? RecipientTimeZone { get; set; }
    /// <summary>number, lead or line.</summary>
    public string? RecipientTimeZoneSource { get; set; }

    /// <summary>A follow-up still waiting for its previous step to be sent (no due time yet).</summary>
    public bool IsWaiting => DueAt == SequenceRows.WaitingDueAt;

    /// <summary>The address the channel sends to: the email for email, else the phone (or an iMessage email).</summary>
    public string Recipient => Type == MessageType.Email ? RecipientEmail ?? "" : RecipientPhone ?? RecipientEmail ?? "";
}

public sealed class MessageEventRow
{
    public long Id { get; set; }
    public string MessageId { get; set; } = "";
    public long At { get; set; }
    public string Status { get; set; } = "";
    public string? Code { get; set; }
    public string? Detail { get; set; }
}

/// <summary>Why a message failed: a stable code, a sentence, and the channel's raw code where it gave one.</summary>
public sealed record MessageError(string Code, string? Message, long? ChannelCode = null);

/// <summary>The API's view of a message.</summary>
public sealed record MessageDto(
    string Id,
    string Direction,
    string Content,
    string? Subject,
    string Type,
    string RequestedType,
    string Status,
    string Delivery,
    string LineId,
    string? LeadId,
    string? BatchId,
    string? RecipientPhone,
    string? RecipientEmail,
    string? RecipientName,
    DateTimeOffset? ScheduledAt,
    string? TimeZone,
    DateTimeOffset? NotBefore,
    DateTimeOffset? SentAt,
    DateTimeOffset? DeliveredAt,
    DateTimeOffset? ReadAt,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    string? FallbackFrom,
    string? FallbackTo,
    string? RetryOf,
    string? ReplyTo,
    bool DryRun,
    string? Channel,
    string? ChannelRef,
    MessageError? Error,
    bool StopOnReply = false,
    string? SequenceId = null,
    int? SequenceStep = null,
    [property: System.ComponentModel.Description("ISO 8601 duration after the previous step's sentAt (follow-ups only), e.g. P2D.")]
    string? FollowUpAfter = null,
    [property: System.ComponentModel.Description("True while a follow-up waits for its previous step to be sent; its scheduledAt is then null.")]
    bool WaitingForPreviousStep = false,
    RecipientWindowDto? RecipientWindow = null,
    [property: System.ComponentModel.Description("IANA zone the recipient window is read in.")]
    string? RecipientTimeZone = null,
    [property: System.ComponentModel.Description("Where recipientTimeZone came from: number, lead or line.")]
    string? RecipientTimeZoneSource = null)
{
    public static MessageDto From(MessageRow r) => new(
        r.Id, r.Direction, r.Content, r.Subject, r.Type, r.RequestedType, r.Status, r.Delivery, r.LineId,
        r.LeadId, r.BatchId, r.RecipientPhone, r.RecipientEmail, r.RecipientName,
        Time.FromMs(r.ScheduledAt), r.ScheduleTimeZone, Time.FromMs(r.NotBefore), Time.FromMs(r.SentAt),
        Time.FromMs(r.DeliveredAt), Time.FromMs(r.ReadAt), Time.FromMs(r.CreatedAt), Time.FromMs(r.UpdatedAt),
        r.FallbackFrom, r.FallbackTo, r.RetryOf, r.ReplyTo, r.DryRun, r.Channel, r.ChannelRef,
        r.ErrorCode is null ? null : new MessageError(r.ErrorCode, r.ErrorMessage, r.ChannelError),
        r.StopOnReply, r.SequenceId, r.SequenceStep, r.FollowUpAfter is { } after ? Durations.Format(TimeSpan.FromMilliseconds(after)) : null,
        r.IsWaiting && MessageStatus.IsPending(r.Status), RecipientWindowDto.Parse(r.RecipientWindow), r.RecipientTimeZone, r.RecipientTimeZoneSource);
}

public sealed record MessageEventDto(DateTimeOffset At, string Status, string? Code, string? Detail)
{
    public static MessageEventDto From(MessageEventRow e) => new(Time.FromMs(e.At), e.Status, e.Code, e.Detail);
}
