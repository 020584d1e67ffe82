namespace LineAgent.Messages;

/// <summary>The SQL of the messages feature. Parameters are named like the C# properties.</summary>
public static class MessageSql
{
    /// <summary>
    /// Adds every message above the highest row each full-text index holds (its docsize table) to that index; run
    /// by the writer in batches, and before a search (see MessageStore.SearchIndex).
    /// </summary>
    public const string IndexNewForSearch = """
        INSERT INTO messages_fts(rowid, content, recipient_name)
            SELECT seq, content, recipient_name FROM messages
            WHERE seq > (SELECT COALESCE(MAX(id), 0) FROM messages_fts_docsize);
        INSERT INTO messages_recipients_fts(rowid, recipient_phone, recipient_email, recipient_name)
            SELECT seq, recipient_phone, recipient_email, recipient_name FROM messages
            WHERE seq > (SELECT COALESCE(MAX(id), 0) FROM messages_recipients_fts_docsize);
        """;

    public const string InsertWithoutReturning = """
        INSERT INTO messages (
            id, direction, content, subject, type, requested_type, status, delivery, line_id, lead_id, batch_id,
            recipient_phone, recipient_email, recipient_name, scheduled_at, schedule_time_zone, due_at, not_before,
            sent_at, created_at, updated_at, fallback_from, retry_of, reply_to, error_code, error_message, dry_run,
            channel, channel_ref, stop_on_reply, sequence_id, sequence_step, follow_up_after, recipient_window,
            recipient_time_zone, recipient_time_zone_source)
        VALUES (
            @Id, @Direction, @Content, @Subject, @Type, @RequestedType, @Status, @Delivery, @LineId, @LeadId, @BatchId,
            @RecipientPhone, @RecipientEmail, @RecipientName, @ScheduledAt, @ScheduleTimeZone, @DueAt, @NotBefore,
            @SentAt, @CreatedAt, @UpdatedAt, @FallbackFrom, @RetryOf, @ReplyTo, @ErrorCode, @ErrorMessage, @DryRun,
            @Channel, @ChannelRef, @StopOnReply, @SequenceId, @SequenceStep, @FollowUpAfter, @RecipientWindow,
            @RecipientTimeZone, @RecipientTimeZoneSource)
        """;

    public const string Insert = InsertWithoutReturning + "\nRETURNING *";

    public const string InsertEvent = """
        INSERT INTO message_events (message_id, at, status, code, detail) VALUES (@MessageId, @At, @Status, @Code, @Detail)
        """;

    public const string GetById = "SELECT * FROM messages WHERE id = @Id";

    public const string EventsFor = "SELECT * FROM message_events WHERE message_id = @Id ORDER BY id";

    /// <summary>
    /// What a cancel (of a message, a batch, a sequence) takes: a message not handed over yet, or one handed to a channel that
    /// marks when its send starts (Messages) and has not started: it waits for Messages.app while another line's script holds
    /// it (up to ChannelGate.MaxWait), and showed `sending` with nothing sent, yet a cancel was refused (probe). Its start mark
    /// (<see cref="KeepScriptBaseline"/>) is a compare-and-set on `sending`, so once it is cancelled the script never runs;
    /// once the mark is on disk the send may be under way and it is not cancellable. The hand-off marks other channels' sends
    /// as started at once (<see cref="ClaimAndHandOff"/>). A cancelled send was not handed over: its hand-off time is cleared, so
    /// that the line's pacing and what a reply answers do not count it.
    /// </summary>
    public const string Cancellable = "(status IN ('scheduled','queued') OR (status = 'sending' AND handed_at IS NOT NULL AND script_baseline IS NULL AND accepted_at IS NULL))";

    public const string Cancel = $"""
        UPDATE messages SET status = 'cancelled', not_before = NULL, claim = NULL, claimed_at = NULL, handed_at = NULL, updated_at = @Now
        WHERE id = @Id AND {Cancellable}
        RETURNING *
        """;

    public const string CancelBatch = $"""
        UPDATE messages SET status = 'cancelled', not_before = NULL, error_code = NULL, claim = NULL, claimed_at = NULL, handed_at = NULL, updated_at = @Now
        WHERE batch_id = @BatchId AND {Cancellable}
        RETURNING *
        """;

    public const string Reschedule = """
        UPDATE messages
        SET content = COALESCE(@Content, content),
            scheduled_at = COALESCE(@ScheduledAt, scheduled_at),
            schedule_time_zone = CASE WHEN @ScheduledAt IS NULL THEN schedule_time_zone ELSE @ScheduleTimeZone END,
            due_at = COALESCE(@ScheduledAt, due_at),
            -- Moved to now or earlier: in line to go, as a send-now. An edit of the content alone leaves the status: a message
            -- due while its line is paused stays scheduled and editable (probe J: it turned queued, and the next edit got 409).
            status = CASE WHEN @ScheduledAt IS NULL THEN status WHEN @ScheduledAt <= @Now THEN 'queued' ELSE 'scheduled' END,
            updated_at = @Now
        WHERE id = @Id AND status = 'scheduled' AND (@ScheduledAt IS NULL OR due_at <> 253402300799999) -- a waiting follow-up keeps waiting
        RETURNING *
        """;

    // ---- sequences and replies ----

    /// <summary>The waiting next step of a sequence gets its due time: `follow_up_after` past the previous step's sent_at.</summary>
    public const string ScheduleFollowUp = """
        UPDATE messages
        SET due_at = @SentAt + follow_up_after, scheduled_at = @SentAt + follow_up_after,
            status = CASE WHEN @SentAt + follow_up_after <= @Now THEN 'queued' ELSE 'scheduled' END,
            updated_at = @Now
        WHERE sequence_id = @SequenceId AND sequence_step = @Step + 1 AND status = 'scheduled' AND due_at = @Waiting
        RETURNING *
        """;

    /// <summary>A step fell back from iMessage to SMS: its later `auto` steps that were routed to iMessage go as SMS.</summary>
    public const string RouteLaterStepsAsSms = """
        UPDATE messages SET type = 'sms', updated_at = @Now
        WHERE sequence_id = @SequenceId AND sequence_step > @Step AND status IN ('scheduled','queued')
          AND requested_type = 'auto' AND type = 'imessage' AND recipient_phone IS NOT NULL
        RETURNING *
        """;

    /// <summary>A step failed or was cancelled: the pending steps after it are cancelled.</summary>
    public const string StopSequence = """
        UPDATE messages
        SET status = 'cancelled', not_before = NULL, error_code = 'sequence_stopped', error_message = @Message, updated_at = @Now
        WHERE sequence_id = @SequenceId AND sequence_step > @Step AND status IN ('scheduled','queued')
        RETURNING *
        """;

    /// <summary>
    /// A step that had stopped its sequence (it failed `unconfirmed`: maybe sent) was sent after all (chat.db confirmed it
    /// late, or its SMS fallback after a late error 22 went): the steps it stopped wait for their previous step again. Only
    /// those before any later step stopped for a reason of its own (cancelled through the API), whose stop stands.
    /// </summary>
    public const string ResumeSequence = """
        UPDATE messages AS m
        SET status = 'scheduled', due_at = @Waiting, not_before = NULL, error_code = NULL, error_message = NULL, updated_at = @Now
        WHERE m.sequence_id = @SequenceId AND m.sequence_step > @Step AND m.status = 'cancelled' AND m.error_code = 'sequence_stopped'
          AND NOT EXISTS (SELECT 1 FROM messages o
                          WHERE o.sequence_id = @SequenceId AND o.sequence_step > @Step AND o.sequence_step < m.sequence_step
                            AND NOT (o.status = 'cancelled' AND o.error_code = 'sequence_stopped'))
        RETURNING *
        """;

    /// <summary>
    /// A sequence cancelled through the API: its steps that a failed `unconfirmed` step had stopped can no longer
    /// be resumed by that step's late confirmation (<see cref="ResumeSequence"/>; review: the cancel found nothing pending,
    /// answered 0, and the steps went out when chat.db confirmed the first). error_code NULL, as the API's cancels.
    /// </summary>
    public const string SealStoppedStepsOfSequence = """
        UPDATE messages SET error_code = NULL, updated_at = @Now
        WHERE sequence_id = @SequenceId AND status = 'cancelled' AND error_code = 'sequence_stopped'
        RETURNING *
        """;

    /// <summary>The same for a batch (<see cref="SealStoppedStepsOfSequence"/>).</summary>
    public const string SealStoppedStepsOfBatch = """
        UPDATE messages SET error_code = NULL, updated_at = @Now
        WHERE batch_id = @BatchId AND status = 'cancelled' AND error_code = 'sequence_stopped'
        RETURNING *
        """;

    public const string CancelSequence = $"""
        UPDATE messages SET status = 'cancelled', not_before = NULL, error_code = NULL, claim = NULL, claimed_at = NULL, handed_at = NULL, updated_at = @Now
        WHERE sequence_id = @SequenceId AND {Cancellable}
        RETURNING *
        """;

    /// <summary>A reply from @Address cancels its pending stop-on-reply messages created before the reply was sent.</summary>
    public const string CancelOnReply = """
        UPDATE messages
        SET status = 'cancelled', not_before = NULL, error_code = 'replied', error_message = @Message, updated_at = @Now
        WHERE direction = 'outbound' AND created_at < @ReplyAt
          AND ((recipient_phone = @Address AND stop_on_reply = 1 AND status IN ('scheduled','queued'))
            OR (recipient_email = @Address AND stop_on_reply = 1 AND status IN ('scheduled','queued')))
        RETURNING *
        """;

    public const string SequenceSteps = "SELECT * FROM messages WHERE sequence_id = @SequenceId ORDER BY sequence_step, seq";

    /// <summary>
    /// The newest reply from a message's recipient sent after @Since (its creation): the reply that would have cancelled it
    /// had it been pending then (<see cref="CancelOnReply"/>). A message being sent when the reply came (its script hung and
    /// Messages was restarted, or it was deferred and came back to the queue) is not pending, and went out afterwards (review).
    /// </summary>
    /// <remarks>
    /// An SMS fallback counts from the failed message it replaces (a reply while the iMessage was in flight: review), and
    /// only a reply taken in (updated_at) after that creation counts, as CancelOnReply, run at intake, never saw a message
    /// that did not exist yet.
    /// </remarks>
    public const string ReplySince = """
        SELECT id FROM messages
        WHERE ((recipient_phone = @Phone AND direction = 'inbound') OR (recipient_email = @Email AND direction = 'inbound'))
          AND sent_at > COALESCE((SELECT f.created_at FROM messages f WHERE f.id = @FallbackFrom), @Since)
          AND updated_at >= COALESCE((SELECT f.created_at FROM messages f WHERE f.id = @FallbackFrom), @Since)
        ORDER BY sent_at DESC LIMIT 1
        """;

    /// <summary>One stop-on-reply message that a reply found not pending (see <see cref="ReplySince"/>) → cancelled `replied`.</summary>
    public const string CancelReplied = """
        UPDATE messages
        SET status = 'cancelled', not_before = NULL, error_code = 'replied', error_message = @Message, updated_at = @Now
        WHERE id = @Id AND stop_on_reply = 1 AND status IN ('scheduled','queued')
        RETURNING *
        """;

    // ---- dispatcher ----

    /// <summary>The next message this line may take, by due time then acceptance order.</summary>
    public const string PeekDue = """
        SELECT * FROM messages INDEXED BY ix_messages_due_line
        WHERE line_id = @LineId AND status IN ('scheduled','queued') AND due_at <= @Now
          AND (not_before IS NULL OR not_before <= @Now)
        ORDER BY due_at, seq
        LIMIT @Limit
        """;

    /// <summary>
    /// This line's pending rows in due order, for when it next has something to do: a due time, or the end of a hold
    /// (not_before). Read until a row's due time reaches the earliest time found (Dispatcher.NextDueAtAsync): the rows
    /// after it cannot be earlier. MIN(MAX(due_at, not_before)) over them all read every pending row of the line, and its
    /// table row for not_before, at every step that found nothing due: with 10,000 scheduled, 1,100 page reads every 30
    /// s of an idle agent. INDEXED BY: without statistics SQLite would pick the line's whole history (ix_messages_line).
    /// </summary>
    public const string PendingDueTimes = """
        SELECT due_at, not_before FROM messages INDEXED BY ix_messages_due_line
        WHERE line_id = @LineId AND status IN ('scheduled','queued')
        ORDER BY due_at, seq
        """;

    /// <summary>
    /// Every line's pending rows in due order, for the next scheduled send (/api/status): a due time, or the end of a
    /// hold (not_before), read as <see cref="PendingDueTimes"/> is, until a due time reaches the earliest found
    /// (StatusQuery). MIN(due_at) alone named a queued message held until tomorrow as next, at a time already past.
    /// Through ix_messages_due (without INDEXED BY, SQLite read every pending row through ix_messages_status).
    /// Follow-ups waiting for their previous step are due at the end of time (@Waiting), not next.
    /// </summary>
    public const string PendingDueTimesAnyLine = """
        SELECT due_at, not_before, line_id FROM messages INDEXED BY ix_messages_due WHERE status IN ('scheduled','queued') AND due_at < @Waiting
        ORDER BY due_at
        """;

    /// <summary>Compare-and-set claim: succeeds for exactly one dispatcher.</summary>
    public const string Claim = """
        UPDATE messages
        SET status = 'sending', claim = @Claim, claimed_at = @Now, handed_at = NULL, not_before = NULL, updated_at = @Now
        WHERE id = @Id AND status IN ('scheduled','queued') AND due_at <= @Now
        RETURNING *
        """;

    /// <summary>
    /// Claim and hand-off in one compare-and-set: from this commit on the row may go out through @Channel.
    /// (One write per send instead of two; the hand-off is on disk before the channel is called.) @StartMark: NULL for a
    /// channel that marks when its send starts (<see cref="KeepScriptBaseline"/>), else -1, started (<see cref="Cancellable"/>).
    /// </summary>
    public const string ClaimAndHandOff = """
        UPDATE messages
        SET status = 'sending', claim = @Claim, claimed_at = @Now, handed_at = @Now, not_before = NULL,
            channel = @Channel, dry_run = @DryRun, new_conversation = @NewConversation, script_baseline = @StartMark, updated_at = @Now
        WHERE id = @Id AND status IN ('scheduled','queued') AND due_at <= @Now
        RETURNING *
        """;

    /// <summary>
    /// Holds one message (e.g. the new-conversation cap): it waits as `queued` until @NotBefore. Only while it is due: the
    /// dispatcher decided on the row it peeked, and a PATCH that moved it later in between keeps it `scheduled` (and editable).
    /// </summary>
    public const string Hold = """
        UPDATE messages SET status = 'queued', not_before = @NotBefore, updated_at = @Now
        WHERE id = @Id AND status IN ('scheduled','queued') AND due_at <= @Now
        RETURNING *
        """;

    /// <summary>A line-wide hold, first part: rows held for the first time (or from scheduled), each announced once.</summary>
    public const string HoldNewlyHeld = """
        UPDATE messages SET status = 'queued', not_before = @NotBefore, updated_at = @Now
        WHERE line_id = @LineId AND status IN ('scheduled','queued') AND due_at <= @Now
          AND (status = 'scheduled' OR not_before IS NULL)
          AND (@Types IS NULL OR type IN (SELECT value FROM json_each(@Types)))
        RETURNING *
        """;

    /// <summary>A line-wide hold, second part: rows already held wait longer, silently (gap, caps, window, open circuit).</summary>
    public const string HoldLine = """
        UPDATE messages SET status = 'queued', not_before = @NotBefore, updated_at = @Now
        WHERE line_id = @LineId AND status IN ('scheduled','queued') AND due_at <= @Now
          AND (not_before IS NULL OR not_before < @NotBefore)
          AND (@Types IS NULL OR type IN (SELECT value FROM json_each(@Types)))
        """;

    /// <summary>
    /// A line's held messages, decided again at a start: their hold ends now. A hold is only ever lengthened
    /// (<see cref="HoldLine"/>), so one of the last run's kept them back while newer messages went: after a restart with
    /// other pacing settings (a window widened: probe L), or within a gap, where this run counts the gap from the last
    /// send's stored times (review). The hold is set to now, not cleared: the dispatcher then holds them again without
    /// announcing them as newly held (<see cref="HoldNewlyHeld"/>).
    /// </summary>
    public const string ReleaseHolds = """
        UPDATE messages SET not_before = @Now, updated_at = @Now
        WHERE line_id = @LineId AND status = 'queued' AND not_before > @Now
        RETURNING *
        """;

    /// <summary>The pacing settings a line runs with now (see <see cref="ReleaseHolds"/>).</summary>
    public const string SaveLinePacing = """
        INSERT INTO line_pacing (line_id, settings, updated_at) VALUES (@LineId, @Settings, @Now)
        ON CONFLICT (line_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at
        """;

    public const string CompleteSent = """
        UPDATE messages
        SET status = 'sent', sent_at = @SentAt, channel_ref = COALESCE(@ChannelRef, channel_ref),
            error_code = NULL, error_message = NULL, claim = NULL, updated_at = @Now
        WHERE id = @Id AND status = 'sending' AND claim IS @Claim
        RETURNING *
        """;

    /// <summary>
    /// Bookkeeping before a Messages script runs (no event): the row is still this attempt's, handed off. The hand-off clears
    /// it (<see cref="ClaimAndHandOff"/>), so an earlier attempt's value never stands for this one's (review).
    /// </summary>
    public const string KeepScriptBaseline = """
        UPDATE messages SET script_baseline = @Baseline
        WHERE id = @Id AND status = 'sending' AND claim IS @Claim AND handed_at IS NOT NULL
        """;

    /// <summary>
    /// Handed-off sends without a stored script baseline in a restored backup: they may have gone out after it was taken,
    /// so they are not taken as never started (<see cref="MessageRow.BaselineUnread"/>; DatabaseRestore).
    /// </summary>
    public const string ScriptMayHaveStarted = """
        UPDATE messages SET script_baseline = @Unread WHERE status = 'sending' AND handed_at IS NOT NULL AND script_baseline IS NULL
        """;

    public const string CompleteAccepted = """
        UPDATE messages
        SET channel_ref = COALESCE(@ChannelRef, channel_ref), channel_baseline = COALESCE(@Baseline, channel_baseline),
            accepted_at = COALESCE(accepted_at, @Now), updated_at = @Now
        WHERE id = @Id AND status = 'sending' AND claim IS @Claim
        RETURNING *
        """;

    public const string CompleteFailed = """
        UPDATE messages
        SET status = 'failed', error_code = @Code, error_message = @Message, channel_error = @ChannelCode, claim = NULL, updated_at = @Now
        WHERE id = @Id AND status = 'sending' AND claim IS @Claim
        RETURNING *
        """;

    public const string Requeue = """
        UPDATE messages
        SET status = 'queued', claim = NULL, claimed_at = NULL, handed_at = NULL, due_at = @DueAt, not_before = @NotBefore, updated_at = @Now
        WHERE id = @Id AND status = 'sending' AND claim IS @Claim
        RETURNING *
        """;

    public const string Sending = "SELECT * FROM messages WHERE status = 'sending' ORDER BY seq";

    /// <summary>After a restart: the channel's own watcher settles it from now on (the send's process is gone).</summary>
    public const string AwaitConfirmation = """
        UPDATE messages SET accepted_at = COALESCE(accepted_at, @Now), updated_at = @Now
        WHERE id = @Id AND status = 'sending'
        RETURNING *
        """;

    /// <summary>Pending messages of lines no longer configured.</summary>
    public const string FailOrphans = """
        UPDATE messages
        SET status = 'failed', error_code = 'line_not_found', updated_at = @Now,
            error_message = 'Line ' || line_id || ' is no longer configured on this agent; the message was not sent.'
        WHERE status IN ('scheduled', 'queued') AND line_id NOT IN @Lines
        RETURNING *
        """;

    /// <summary>
    /// After `lineagent restore`: pending messages of the restored copy that were due by the time of the restore may have
    /// gone out after the backup was taken (the backup still says queued). Never sent again without force.
    /// </summary>
    public const string FailRestored = """
        UPDATE messages
        SET status = 'failed', error_code = 'restored', updated_at = @Now,
            error_message = 'The database was restored from a backup (' || @Backup || '); this message was still pending in it and was due before the restore, so it may have been sent after the backup was taken. It is not sent again (retry with force=true if it was not).'
        WHERE status IN ('scheduled', 'queued') AND due_at <= @RestoredAt
        RETURNING *
        """;

    /// <summary>Pending messages of a restored backup that the database it replaced showed sending or failed (@Ids: JSON array).</summary>
    public const string FailRestoredWentOn = """
        UPDATE messages
        SET status = 'failed', error_code = 'restored', updated_at = @Now,
            error_message = 'The database was restored from a backup (' || @Backup || '); this message was still pending in it, but the database it replaced shows it sending or failed after the backup was taken. It is not sent again (retry with force=true if it did not go out).'
        WHERE status IN ('scheduled', 'queued') AND id IN (SELECT value FROM json_each(@Ids))
        RETURNING *
        """;

    /// <summary>
    /// Pending messages of a restored backup that the database it replaced showed sent after the backup (@Sent: JSON array
    /// of {id, sentAt, ref}): sent, at that time, so a sequence's next step is due from it.
    /// </summary>
    public const string SentRestored = """
        UPDATE messages
        SET status = 'sent', sent_at = j.value ->> '$.sentAt', channel_ref = COALESCE(j.value ->> '$.ref', channel_ref),
            handed_at = COALESCE(handed_at, j.value ->> '$.sentAt'), -- what a reply answers, and the line's pacing history
            not_before = NULL, updated_at = @Now
        FROM json_each(@Sent) AS j
        WHERE messages.id = j.value ->> '$.id' AND messages.status IN ('scheduled', 'queued')
        RETURNING *
        """;

    /// <summary>Pending messages of a restored backup that were cancelled after it, as the database it replaced showed (@Ids: JSON array).</summary>
    public const string CancelRestored = """
        UPDATE messages SET status = 'cancelled', not_before = NULL, updated_at = @Now
        WHERE status IN ('scheduled', 'queued') AND id IN (SELECT value FROM json_each(@Ids))
        RETURNING *
        """;

    /// <summary>
    /// Schedules missed by more than Scheduling:MaxLateness (agent was down), on active lines: a paused line's messages
    /// wait for it to resume whether or not the agent restarted in between (@Active: the ids of the active lines, a JSON array).
    /// </summary>
    // Follow-ups (step 1 and on) are due a duration after the step before, not at a time someone chose: a Mac asleep or
    // off when one fell due sends it when the agent is back (in the recipient's hours), instead of failing it and
    // stopping the sequence (probe: a night's sleep stopped every sequence with a step due in it). One whose time was
    // PATCHed (its event `rescheduled`) has a chosen time, and is missed as any schedule is (review).
    public const string FailMissed = """
        UPDATE messages
        SET status = 'failed', error_code = 'missed_schedule',
            error_message = 'The agent was not running at the scheduled time and the message is more than ' || @MaxLatenessText || ' late.',
            updated_at = @Now
        WHERE status IN ('scheduled','queued') AND due_at < @Cutoff AND scheduled_at IS NOT NULL AND scheduled_at < @Cutoff
          AND (COALESCE(sequence_step, 0) = 0
               OR EXISTS (SELECT 1 FROM message_events e WHERE e.message_id = messages.id AND e.code = 'rescheduled'))
          AND not_before IS NULL AND line_id IN (SELECT value FROM json_each(@Active)) AND id NOT IN (SELECT value FROM json_each(@Except))
        RETURNING *
        """;
}
