-- Lead search ignores accents and case, as the history's q does: q=Zoe finds "Zoë", q=jose finds "José" (black-box
-- probe: the trigram index of 004 matched them as typed). The same index with remove_diacritics (SQLite 3.45 and
-- later), filled again from the leads; the triggers of 004 write to it by name and stay as they are.
DROP TABLE leads_fts;
CREATE VIRTUAL TABLE leads_fts USING fts5(
    first_name, last_name, company, phone, email,
    content = 'leads', content_rowid = 'seq', tokenize = 'trigram remove_diacritics 1'
);
INSERT INTO leads_fts(leads_fts) VALUES ('rebuild');
