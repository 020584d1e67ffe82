-- 007: follow-up sequences, stop-on-reply, and the recipient's own hours.
-- stop_on_reply: an inbound message from the recipient after created_at cancels the row while it is pending.
-- sequence_id/sequence_step: the steps of one lead's sequence (0 = the first message).
-- follow_up_after: ms after the previous step's sent_at. A step that waits for its previous one is
--   status 'scheduled' with due_at = 253402300799999 (9999-12-31T23:59:59.999Z), which no claim ever reaches;
--   the transition that marks the previous step sent gives it its real due time in the same transaction.
-- recipient_window: 'HH:mm-HH:mm' given on the send (a line's Pacing:RecipientWindow is read from its settings).
-- recipient_time_zone / _source: the zone the window is read in, and where it came from (number, lead, line).
ALTER TABLE messages ADD COLUMN stop_on_reply INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN sequence_id TEXT;
ALTER TABLE messages ADD COLUMN sequence_step INTEGER;
ALTER TABLE messages ADD COLUMN follow_up_after INTEGER;
ALTER TABLE messages ADD COLUMN recipient_window TEXT;
ALTER TABLE messages ADD COLUMN recipient_time_zone TEXT;
ALTER TABLE messages ADD COLUMN recipient_time_zone_source TEXT;

CREATE INDEX ix_messages_sequence ON messages(sequence_id, sequence_step) WHERE sequence_id IS NOT NULL;
-- What a reply may cancel: pending stop-on-reply rows by address.
CREATE INDEX ix_messages_stop_phone ON messages(recipient_phone) WHERE stop_on_reply = 1 AND status IN ('scheduled','queued');
CREATE INDEX ix_messages_stop_email ON messages(recipient_email) WHERE stop_on_reply = 1 AND status IN ('scheduled','queued');
