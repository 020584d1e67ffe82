namespace LineAgent.Bridge.ChatDb;

/// <summary>One row of chat.db's `message` table, as the bridge needs it (missing columns read as 0/NULL).</summary>
public sealed record ChatMessage(
    long RowId,
    string Guid,
    string? Text,
    string? Handle,
    string? Service,
    bool IsFromMe,
    long Error,
    bool IsSent,
    bool IsFinished,
    bool IsDelivered,
    DateTimeOffset? Date,
    DateTimeOffset? DateDelivered,
    DateTimeOffset? DateRead,
    long ItemType,
    long AssociatedMessageType,
    bool WasDowngraded,
    long ScheduleType,
    bool InChat)
{
    /// <summary>A rich-link or app balloon (e.g. com.apple.messages.URLBalloonProvider), null for plain text.</summary>
    public string? BalloonBundleId { get; init; }

    /// <summary>The separate row Messages adds for a link's preview (imsg coalesces these with the text row).</summary>
    public bool IsUrlPreview => BalloonBundleId == "com.apple.messages.URLBalloonProvider";

    /// <summary>A real message (not a tapback, group event or "Send Later" placeholder).</summary>
    public bool IsPlainMessage => ItemType == 0 && AssociatedMessageType == 0 && ScheduleType != 2;

    /// <summary>Service names as chat.db stores them (RCS has been seen lower-case too).</summary>
    public bool IsIMessage => string.Equals(Service, "iMessage", StringComparison.OrdinalIgnoreCase);
    public bool IsRcs => string.Equals(Service, "RCS", StringComparison.OrdinalIgnoreCase);

    /// <summary>macOS 26: a send that "succeeds" but writes an empty row joined to no chat, never delivered.</summary>
    public bool IsGhost => IsFromMe && string.IsNullOrEmpty(Text) && !InChat;

    public bool IsConfirmedSent => IsSent && IsFinished && Error == 0;
}

/// <summary>Apple's epoch (2001-01-01Z); values in nanoseconds since macOS 10.13, in seconds before.</summary>
public static class AppleTime
{
    public static readonly DateTimeOffset Epoch = new(2001, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static DateTimeOffset? FromAppleValue(long value)
    {
        if (value <= 0)
            return null;
        return value < 1_000_000_000_000
            ? Epoch.AddSeconds(value)
            : Epoch.AddTicks(value / 100);
    }

    public static long ToAppleNanoseconds(DateTimeOffset t) => (t - Epoch).Ticks * 100;
}
