-- The terms of the message search index, for history search (MessageFilter.ToSql): a word the user types is looked up
-- here and searched as the terms it begins, joined by OR, instead of as an FTS5 prefix term. FTS5 answers a prefix
-- term by merging the whole doclist of every term that starts with it before it hands out a single row; exact terms it
-- reads newest first and stops at the page. Read-only; it stores nothing.
CREATE VIRTUAL TABLE messages_fts_vocab USING fts5vocab(messages_fts, row);
