-- 001: messages, their status history, idempotency keys, line state.
-- Times are INTEGER Unix milliseconds UTC.

CREATE TABLE messages (
    seq                 INTEGER PRIMARY KEY,          -- insertion order; paging cursor
    id                  TEXT    NOT NULL UNIQUE,      -- msg_<ulid>
    direction           TEXT    NOT NULL DEFAULT 'outbound' CHECK (direction IN ('outbound','inbound')),
    content             TEXT    NOT NULL,
    subject             TEXT,
    type                TEXT    NOT NULL CHECK (type IN ('imessage','sms','email')),
    requested_type      TEXT    NOT NULL CHECK (requested_type IN ('auto','imessage','sms','email')),
    status              TEXT    NOT NULL CHECK (status IN ('scheduled','queued','sending','sent','failed','cancelled','received')),
    delivery            TEXT    NOT NULL DEFAULT 'unknown' CHECK (delivery IN ('unknown','delivered','read','not_delivered')),
    line_id             TEXT    NOT NULL,
    lead_id             TEXT,
    batch_id            TEXT,
    recipient_phone     TEXT,
    recipient_email     TEXT,
    recipient_name      TEXT,
    scheduled_at        INTEGER,
    schedule_time_zone  TEXT,
    due_at              INTEGER NOT NULL,             -- earliest time the dispatcher may take it
    not_before          INTEGER,                      -- set while pacing holds it back
    sent_at             INTEGER,
    delivered_at        INTEGER,
    read_at             INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    fallback_from       TEXT,
    retry_of            TEXT,
    reply_to            TEXT,
    error_code          TEXT,
    error_message       TEXT,
    dry_run             INTEGER NOT NULL DEFAULT 0,
    claim               TEXT,                         -- owner token while status = 'sending'
    claimed_at          INTEGER,
    handed_at           INTEGER,                      -- set just before the channel is called
    channel             TEXT,                         -- dry-run | messages | smtp | twilio
    channel_ref         TEXT                          -- Messages guid, Twilio SID, Message-ID
);

-- The dispatcher's "what is due on this line" and "when is the next one" queries.
CREATE INDEX ix_messages_due_line ON messages(line_id, due_at, seq) WHERE status IN ('scheduled','queued');
CREATE INDEX ix_messages_due      ON messages(due_at) WHERE status IN ('scheduled','queued');
CREATE INDEX ix_messages_sending  ON messages(line_id) WHERE status = 'sending';
-- History filters, newest first.
CREATE INDEX ix_messages_status   ON messages(status, seq);
CREATE INDEX ix_messages_type     ON messages(type, seq);
CREATE INDEX ix_messages_line     ON messages(line_id, seq);
CREATE INDEX ix_messages_lead     ON messages(lead_id, seq)  WHERE lead_id  IS NOT NULL;
CREATE INDEX ix_messages_batch    ON messages(batch_id, seq) WHERE batch_id IS NOT NULL;
CREATE INDEX ix_messages_phone    ON messages(recipient_phone, seq) WHERE recipient_phone IS NOT NULL;
CREATE INDEX ix_messages_email    ON messages(recipient_email, seq) WHERE recipient_email IS NOT NULL;
CREATE INDEX ix_messages_time     ON messages(COALESCE(sent_at, scheduled_at, created_at));
CREATE INDEX ix_messages_fallback ON messages(fallback_from) WHERE fallback_from IS NOT NULL;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, recipient_name,
    content = 'messages', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content, recipient_name) VALUES (new.seq, new.content, new.recipient_name);
END;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, recipient_name) VALUES ('delete', old.seq, old.content, old.recipient_name);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF content, recipient_name ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, recipient_name) VALUES ('delete', old.seq, old.content, old.recipient_name);
    INSERT INTO messages_fts(rowid, content, recipient_name) VALUES (new.seq, new.content, new.recipient_name);
END;

CREATE TABLE message_events (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT    NOT NULL REFERENCES messages(id),
    at          INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    code        TEXT,
    detail      TEXT
);
CREATE INDEX ix_message_events_message ON message_events(message_id, id);
CREATE INDEX ix_message_events_failed  ON message_events(at) WHERE status = 'failed';

CREATE TABLE idempotency_keys (
    key             TEXT    PRIMARY KEY,
    request_hash    TEXT    NOT NULL,
    message_id      TEXT,
    response_status INTEGER,
    response_body   TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX ix_idempotency_created ON idempotency_keys(created_at);

CREATE TABLE line_state (
    line_id     TEXT    PRIMARY KEY,
    active      INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
