-- 006: substring search over recipients (phone, email, name) without reading every message:
-- a trigram FTS5 index, like leads_fts. GET /api/messages?recipient= uses it for 3 characters and more.
CREATE VIRTUAL TABLE messages_recipients_fts USING fts5(
    recipient_phone, recipient_email, recipient_name,
    content = 'messages', content_rowid = 'seq', tokenize = 'trigram'
);
CREATE TRIGGER messages_recipients_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_recipients_fts(rowid, recipient_phone, recipient_email, recipient_name)
    VALUES (new.seq, new.recipient_phone, new.recipient_email, new.recipient_name);
END;
CREATE TRIGGER messages_recipients_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_recipients_fts(messages_recipients_fts, rowid, recipient_phone, recipient_email, recipient_name)
    VALUES ('delete', old.seq, old.recipient_phone, old.recipient_email, old.recipient_name);
END;
CREATE TRIGGER messages_recipients_fts_au AFTER UPDATE OF recipient_phone, recipient_email, recipient_name ON messages BEGIN
    INSERT INTO messages_recipients_fts(messages_recipients_fts, rowid, recipient_phone, recipient_email, recipient_name)
    VALUES ('delete', old.seq, old.recipient_phone, old.recipient_email, old.recipient_name);
    INSERT INTO messages_recipients_fts(rowid, recipient_phone, recipient_email, recipient_name)
    VALUES (new.seq, new.recipient_phone, new.recipient_email, new.recipient_name);
END;
INSERT INTO messages_recipients_fts(messages_recipients_fts) VALUES ('rebuild');
