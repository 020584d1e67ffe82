-- GET /api/suppressions pages newest first (time added, then address), as every list of the API does; its cursor is
-- the last row's (created_at, address), read with a row-value comparison that this index answers.
CREATE INDEX ix_suppressions_created ON suppressions(created_at, address);
