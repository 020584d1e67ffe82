-- 005: what a Messages send needs to be found in chat.db and timed fairly.
-- channel_baseline: chat.db's MAX(ROWID) taken just before the send: the send's own row is above it.
-- accepted_at: when the channel accepted it (osascript returned). The confirmation deadline counts from
-- here, not from the hand-off: the first Automation consent dialog can hold a send for minutes.
ALTER TABLE messages ADD COLUMN channel_baseline INTEGER;
ALTER TABLE messages ADD COLUMN accepted_at INTEGER;
