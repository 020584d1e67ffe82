-- 004: leads, bulk batches' rejected entries, webhook subscriptions and their delivery outbox.

CREATE TABLE leads (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,      -- lead_<ulid>
    first_name  TEXT,
    last_name   TEXT,
    phone       TEXT,                         -- E.164
    email       TEXT,                         -- lower case
    company     TEXT,
    fields      TEXT    NOT NULL DEFAULT '{}',-- JSON object of strings (CSV columns we do not map)
    tags        TEXT    NOT NULL DEFAULT '[]',-- JSON array of strings
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_leads_phone ON leads(phone) WHERE phone IS NOT NULL;
CREATE UNIQUE INDEX ux_leads_email ON leads(email) WHERE email IS NOT NULL;

CREATE TABLE lead_tags (
    tag     TEXT NOT NULL,
    lead_id TEXT NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    PRIMARY KEY (tag, lead_id)
);
CREATE INDEX ix_lead_tags_lead ON lead_tags(lead_id);

-- Substring search over name, company, phone and email.
CREATE VIRTUAL TABLE leads_fts USING fts5(
    first_name, last_name, company, phone, email,
    content = 'leads', content_rowid = 'seq', tokenize = 'trigram'
);
CREATE TRIGGER leads_fts_ai AFTER INSERT ON leads BEGIN
    INSERT INTO leads_fts(rowid, first_name, last_name, company, phone, email)
    VALUES (new.seq, new.first_name, new.last_name, new.company, new.phone, new.email);
END;
CREATE TRIGGER leads_fts_ad AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts(leads_fts, rowid, first_name, last_name, company, phone, email)
    VALUES ('delete', old.seq, old.first_name, old.last_name, old.company, old.phone, old.email);
END;
CREATE TRIGGER leads_fts_au AFTER UPDATE ON leads BEGIN
    INSERT INTO leads_fts(leads_fts, rowid, first_name, last_name, company, phone, email)
    VALUES ('delete', old.seq, old.first_name, old.last_name, old.company, old.phone, old.email);
    INSERT INTO leads_fts(rowid, first_name, last_name, company, phone, email)
    VALUES (new.seq, new.first_name, new.last_name, new.company, new.phone, new.email);
END;

-- Leads of a bulk send that could not become a message (no address, missing template field, unknown lead).
CREATE TABLE batch_rejections (
    id          INTEGER PRIMARY KEY,
    batch_id    TEXT    NOT NULL,
    lead_id     TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX ix_batch_rejections_batch ON batch_rejections(batch_id, id);

CREATE TABLE webhooks (
    id          TEXT    PRIMARY KEY,          -- wh_<ulid>
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,             -- JSON array; empty = every event
    secret      TEXT    NOT NULL,             -- whsec_<base64 key>
    created_at  INTEGER NOT NULL
);

-- The outbox: one row per (subscription, event), written in the transaction of the change.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL,         -- evt_<ulid>: the webhook-id header, kept across retries
    webhook_id      TEXT    NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id      TEXT,                     -- deliveries of one message go out in order
    type            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_webhook_deliveries_order ON webhook_deliveries(webhook_id, message_id, id) WHERE status = 'pending';
CREATE INDEX ix_webhook_deliveries_hook ON webhook_deliveries(webhook_id, id);
