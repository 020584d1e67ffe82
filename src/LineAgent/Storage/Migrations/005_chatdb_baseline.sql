-- 005: chat.db's MAX(ROWID) taken just before a Messages send: the send's own row is above it.
ALTER TABLE messages ADD COLUMN channel_baseline INTEGER;
