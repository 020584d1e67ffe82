-- Lead search (black-box probe): it was accent-sensitive while the history's q is not (q=Zoe did not find "Zoë"), and a
-- full name found nothing ("Maria Lopez": first and last name are columns of their own, and a phrase is matched within
-- one column). The trigram index again, with remove_diacritics (SQLite 3.45 and later) and a full_name column. It keeps
-- its own copy of the text (full_name is no column of leads, so it cannot read them from the table as 004's did), so the
-- triggers are made again with it. A phrase still matches within one column: "Acme Inc" does not match a lead whose
-- company has "Inc" and whose email has "acme" (a bulk's leadFilter.q selects by it: review).
DROP TRIGGER leads_fts_ai;
DROP TRIGGER leads_fts_ad;
DROP TRIGGER leads_fts_au;
DROP TABLE leads_fts;
CREATE VIRTUAL TABLE leads_fts USING fts5(
    first_name, last_name, full_name, company, phone, email,
    tokenize = 'trigram remove_diacritics 1'
);
INSERT INTO leads_fts(rowid, first_name, last_name, full_name, company, phone, email)
SELECT seq, first_name, last_name, trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')), company, phone, email FROM leads;
CREATE TRIGGER leads_fts_ai AFTER INSERT ON leads BEGIN
    INSERT INTO leads_fts(rowid, first_name, last_name, full_name, company, phone, email)
    VALUES (new.seq, new.first_name, new.last_name, trim(coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '')),
            new.company, new.phone, new.email);
END;
CREATE TRIGGER leads_fts_ad AFTER DELETE ON leads BEGIN
    DELETE FROM leads_fts WHERE rowid = old.seq;
END;
CREATE TRIGGER leads_fts_au AFTER UPDATE ON leads BEGIN
    DELETE FROM leads_fts WHERE rowid = old.seq;
    INSERT INTO leads_fts(rowid, first_name, last_name, full_name, company, phone, email)
    VALUES (new.seq, new.first_name, new.last_name, trim(coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '')),
            new.company, new.phone, new.email);
END;
