namespace LineAgent.Delivery;

/// <summary>SQL of the delivery watcher: confirmation, delivery and read receipts, replies.</summary>
public static class DeliverySql
{
    public const string AwaitingConfirmation = """
        SELECT * FROM messages WHERE status = 'sending' AND channel = 'messages' AND accepted_at IS NOT NULL ORDER BY handed_at, seq
        """;

    /// <summary>Sends that timed out unconfirmed but may still show up in chat.db: a late row settles them.</summary>
    public const string UnconfirmedStillWatched = """
        SELECT * FROM messages
        WHERE status = 'failed' AND error_code = 'unconfirmed' AND channel = 'messages' AND channel_ref IS NULL
          AND track_until IS NOT NULL AND track_until > @Now AND handed_at IS NOT NULL
        ORDER BY handed_at, seq
        """;

    public const string Tracked = """
        SELECT * FROM messages WHERE track_until IS NOT NULL AND track_until > @Now AND channel_ref IS NOT NULL
        """;

    /// <summary>The oldest acceptance still waiting for chat.db: when the next confirmation deadline falls.</summary>
    public const string OldestAwaiting = "SELECT MIN(accepted_at) FROM messages WHERE status = 'sending' AND channel = 'messages'";

    public const string GuidTaken = "SELECT COUNT(*) FROM messages WHERE channel_ref = @Guid";

    public const string Match = """
        UPDATE messages SET channel_ref = @Guid, updated_at = @Now
        WHERE id = @Id AND channel_ref IS NULL AND (status = 'sending' OR (status = 'failed' AND error_code = 'unconfirmed'))
        RETURNING *
        """;

    public const string FailUnconfirmed = """
        UPDATE messages
        SET status = 'failed', error_code = 'unconfirmed', error_message = @Message, claim = NULL, track_until = @TrackUntil, updated_at = @Now
        WHERE id = @Id AND status = 'sending'
        RETURNING *
        """;

    /// <summary>chat.db confirmed, after all, a send that had timed out as unconfirmed.</summary>
    public const string ConfirmLate = """
        UPDATE messages
        SET status = 'sent', sent_at = @SentAt, error_code = NULL, error_message = NULL, track_until = @TrackUntil, updated_at = @Now
        WHERE id = @Id AND status = 'failed' AND error_code = 'unconfirmed'
        RETURNING *
        """;

    public const string FailLate = """
        UPDATE messages
        SET error_code = @Code, error_message = @Message, channel_error = @ChannelError, track_until = NULL, updated_at = @Now
        WHERE id = @Id AND status = 'failed' AND error_code = 'unconfirmed'
        RETURNING *
        """;

    /// <summary>
    /// An unconfirmed iMessage turns out to have failed with error 22 (no iMessage): its reason is replaced and the SMS that
    /// goes out instead is named, unless the message was retried meanwhile (a retry that was not cancelled sends it
    /// already; a fallback as well would send it twice).
    /// </summary>
    public const string FailLateWithFallback = """
        UPDATE messages
        SET error_code = @Code, error_message = @Message, channel_error = @ChannelError, track_until = NULL, fallback_to = @FallbackTo,
            updated_at = @Now
        WHERE id = @Id AND status = 'failed' AND error_code = 'unconfirmed'
          AND NOT EXISTS (SELECT 1 FROM messages AS r INDEXED BY ix_messages_retry_of WHERE r.retry_of = @Id AND r.status <> 'cancelled')
        RETURNING *
        """;

    public const string ConfirmSent = """
        UPDATE messages
        SET status = 'sent', sent_at = @SentAt, claim = NULL, track_until = @TrackUntil, updated_at = @Now
        WHERE id = @Id AND status = 'sending'
        RETURNING *
        """;

    public const string Fail = """
        UPDATE messages
        SET status = 'failed', error_code = @Code, error_message = @Message, channel_error = @ChannelError,
            claim = NULL, track_until = NULL, fallback_to = @FallbackTo, updated_at = @Now
        WHERE id = @Id AND status = 'sending'
        RETURNING *
        """;

    public const string Delivered = """
        UPDATE messages SET delivery = 'delivered', delivered_at = @At, updated_at = @Now
        WHERE id = @Id AND delivery = 'unknown'
        RETURNING *
        """;

    /// <summary>Delivered, and nothing more to follow (Twilio reports no read receipts).</summary>
    public const string DeliveredFinal = """
        UPDATE messages SET delivery = 'delivered', delivered_at = @At, track_until = NULL, updated_at = @Now
        WHERE id = @Id AND delivery = 'unknown'
        RETURNING *
        """;

    public const string Read = """
        UPDATE messages
        SET delivery = 'read', read_at = @At, delivered_at = COALESCE(delivered_at, @At), track_until = NULL, updated_at = @Now
        WHERE id = @Id AND delivery IN ('unknown', 'delivered')
        RETURNING *
        """;

    /// <summary>
    /// Sent, and the channel reported it not delivered (a carrier receipt, Messages' error after sending): the reason goes
    /// on the row as its `error` (the status stays `sent`), so the message itself says why, not only its events.
    /// </summary>
    public const string NotDelivered = """
        UPDATE messages SET delivery = 'not_delivered', error_code = @Code, error_message = @Message, channel_error = @ChannelError,
            track_until = NULL, updated_at = @Now
        WHERE id = @Id AND delivery <> 'not_delivered'
        RETURNING *
        """;

    public const string ExpireTracking = "UPDATE messages SET track_until = NULL WHERE track_until IS NOT NULL AND track_until <= @Now";

    /// <summary>
    /// What a reply answers: of our sends to the address handed over at or before the reply's date, the last handed over,
    /// except that a Messages send that chat.db dates after the reply comes after the others, and one that provably never
    /// left (failed, not maybe sent: FailureCodes.MaybeSent) comes last. By the hand-off alone, a reply went to a send that
    /// failed `recipient_unresolvable` after the one they read, or to a follow-up handed over before the reply but sent after
    /// it (black-box probe). Only Messages' sent_at is the channel's own date (Twilio's is when the status poll saw it, so a
    /// Twilio send of the moment would lose its reply to an older one: review). Every reply linked before is still linked.
    /// </summary>
    public const string LastOutboundBefore = """
        SELECT * FROM messages
        WHERE direction = 'outbound' AND handed_at <= @At
          AND ((recipient_phone = @Address AND handed_at IS NOT NULL) OR (recipient_email = @Address AND handed_at IS NOT NULL))
        ORDER BY CASE
                   WHEN status = 'failed' AND COALESCE(error_code, '') NOT IN ('unconfirmed', 'interrupted', 'channel_error', 'restored') THEN 2
                   WHEN channel = 'messages' AND sent_at > @At THEN 1
                   ELSE 0
                 END,
                 handed_at DESC, seq DESC
        LIMIT 1
        """;

    /// <summary>A pending stop-on-reply message to an address, created before @At: an inbound message then stops it even before any send reached them.</summary>
    public const string PendingStopOnReply = """
        SELECT * FROM messages
        WHERE direction = 'outbound' AND created_at < @At
          AND ((recipient_phone = @Address AND stop_on_reply = 1 AND status IN ('scheduled','queued'))
            OR (recipient_email = @Address AND stop_on_reply = 1 AND status IN ('scheduled','queued')))
        ORDER BY seq LIMIT 1
        """;

    public const string NewestInboundFrom = """
        SELECT MAX(sent_at) FROM messages
        WHERE (recipient_phone = @Address AND direction = 'inbound') OR (recipient_email = @Address AND direction = 'inbound')
        """;

    public const string InboundExists = "SELECT COUNT(*) FROM messages WHERE direction = 'inbound' AND channel_ref = @Guid";

    /// <summary>A reply from the address with this date and text: an iCloud back-filled copy (a new guid) of one already taken.</summary>
    public const string SameInbound = """
        SELECT COUNT(*) FROM messages
        WHERE sent_at = @At AND content = @Text
          AND ((recipient_phone = @Address AND direction = 'inbound') OR (recipient_email = @Address AND direction = 'inbound'))
        """;

    public const string GetState = "SELECT value FROM bridge_state WHERE key = @Key";

    public const string GetStates = "SELECT key AS Key, value AS Value FROM bridge_state WHERE key IN @Keys";

    public const string SetState = """
        INSERT INTO bridge_state (key, value) VALUES (@Key, @Value) ON CONFLICT (key) DO UPDATE SET value = excluded.value
        """;
}
