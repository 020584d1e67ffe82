-- The writer no longer adds new messages to the two full-text indexes at every commit, but 1,000 at a time, after
-- 1 s without other work, and before any search (MessageStore.SearchIndex). A row can therefore be changed before it
-- is in an index. FTS5's 'delete' of a row the index does not hold corrupts the index, so the update and delete
-- triggers now act only on rows each index already holds (rowid at or below its highest); a row changed earlier is
-- indexed later with its new values, and a deleted one never.
DROP TRIGGER IF EXISTS messages_fts_ad;
DROP TRIGGER IF EXISTS messages_fts_au;
DROP TRIGGER IF EXISTS messages_recipients_fts_ad;
DROP TRIGGER IF EXISTS messages_recipients_fts_au;

CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages
WHEN old.seq <= (SELECT COALESCE(MAX(id), 0) FROM messages_fts_docsize) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, recipient_name) VALUES ('delete', old.seq, old.content, old.recipient_name);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF content, recipient_name ON messages
WHEN old.seq <= (SELECT COALESCE(MAX(id), 0) FROM messages_fts_docsize) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, recipient_name) VALUES ('delete', old.seq, old.content, old.recipient_name);
    INSERT INTO messages_fts(rowid, content, recipient_name) VALUES (new.seq, new.content, new.recipient_name);
END;
CREATE TRIGGER messages_recipients_fts_ad AFTER DELETE ON messages
WHEN old.seq <= (SELECT COALESCE(MAX(id), 0) FROM messages_recipients_fts_docsize) BEGIN
    INSERT INTO messages_recipients_fts(messages_recipients_fts, rowid, recipient_phone, recipient_email, recipient_name)
    VALUES ('delete', old.seq, old.recipient_phone, old.recipient_email, old.recipient_name);
END;
CREATE TRIGGER messages_recipients_fts_au AFTER UPDATE OF recipient_phone, recipient_email, recipient_name ON messages
WHEN old.seq <= (SELECT COALESCE(MAX(id), 0) FROM messages_recipients_fts_docsize) BEGIN
    INSERT INTO messages_recipients_fts(messages_recipients_fts, rowid, recipient_phone, recipient_email, recipient_name)
    VALUES ('delete', old.seq, old.recipient_phone, old.recipient_email, old.recipient_name);
    INSERT INTO messages_recipients_fts(rowid, recipient_phone, recipient_email, recipient_name)
    VALUES (new.seq, new.recipient_phone, new.recipient_email, new.recipient_name);
END;
