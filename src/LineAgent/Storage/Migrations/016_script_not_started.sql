-- From here a handed-off Messages send whose script_baseline (015) is NULL never reached its script: the baseline is
-- stored before every script, -1 when chat.db's MAX(ROWID) could not be read. A restart then proves it was not sent
-- and sends it (MessagesChannel.ReconcileAsync). Rows already `sending` may have started their scripts under the
-- builds before this one (which stored nothing when the read failed): not proven unsent.
UPDATE messages SET script_baseline = -1 WHERE status = 'sending' AND handed_at IS NOT NULL AND script_baseline IS NULL;
