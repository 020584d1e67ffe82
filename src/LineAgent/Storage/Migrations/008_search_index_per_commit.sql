-- The two full-text indexes of messages are no longer filled by AFTER INSERT triggers: a statement that writes an
-- FTS5 table inside a transaction opens a statement savepoint, and FTS5 writes what it holds as a new segment at
-- every savepoint, then merges those segments; one segment per message was most of the writer's time. The writer
-- now adds every message inserted in a transaction to both indexes with one statement each, just before COMMIT
-- (MessageStore, MessageSql.IndexNewForSearch), so they stay exactly in step with the table. Updates and deletes
-- keep their triggers (rare).
DROP TRIGGER IF EXISTS messages_fts_ai;
DROP TRIGGER IF EXISTS messages_recipients_fts_ai;
