-- 003: pacing needs each line's hand-offs by time, and which of them opened a new conversation.
ALTER TABLE messages ADD COLUMN new_conversation INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ix_messages_handed ON messages(line_id, handed_at) WHERE handed_at IS NOT NULL;
