-- 002: what the Messages bridge needs: delivery tracking, raw channel errors, fallback links,
-- the suppression list, availability knowledge and the chat.db read position.

ALTER TABLE messages ADD COLUMN channel_error INTEGER;       -- raw code from the channel (chat.db message.error, Twilio code, SMTP status)
ALTER TABLE messages ADD COLUMN fallback_to TEXT;            -- the SMS created when this iMessage could not be delivered
ALTER TABLE messages ADD COLUMN track_until INTEGER;         -- watch chat.db for this message's delivery/read until then

CREATE INDEX ix_messages_track ON messages(track_until) WHERE track_until IS NOT NULL;
CREATE INDEX ix_messages_channel_ref ON messages(channel_ref) WHERE channel_ref IS NOT NULL;
CREATE INDEX ix_messages_reply_to ON messages(reply_to) WHERE reply_to IS NOT NULL;

CREATE TABLE suppressions (
    address     TEXT    PRIMARY KEY,          -- E.164 phone or lower-case email
    reason      TEXT    NOT NULL,             -- e.g. "replied STOP", "twilio 21610", "manual"
    source      TEXT    NOT NULL,             -- reply | twilio | api
    message_id  TEXT,                         -- the reply or send that caused it
    created_at  INTEGER NOT NULL
);

CREATE TABLE availability (
    address     TEXT    PRIMARY KEY,
    imessage    TEXT    NOT NULL CHECK (imessage IN ('available','unavailable','unknown')),
    source      TEXT    NOT NULL,
    checked_at  INTEGER NOT NULL
);

CREATE TABLE bridge_state (
    key         TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL
);
