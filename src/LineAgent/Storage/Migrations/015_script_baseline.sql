-- script_baseline: chat.db's MAX(ROWID) read just before a Messages script runs, on disk before the script starts (its own
-- synced write). channel_baseline (005) is written with the outcome, so a crash while the script ran left a send without
-- one, and after the restart an earlier send of the same text to the same person could take the row that script wrote
-- (a false `sent`, and the send that wrote it `unconfirmed`). Now the recovered send is placed by this position.
ALTER TABLE messages ADD COLUMN script_baseline INTEGER;
