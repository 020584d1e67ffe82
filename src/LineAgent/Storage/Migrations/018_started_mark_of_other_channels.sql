-- From here a cancel takes a handed-off send whose script_baseline is NULL: a send to a channel that marks when it starts
-- (Messages: the baseline, stored just before its script) that is still waiting to start (MessageSql.Cancellable). The
-- hand-off now sets -1 ("may have started") for every other channel, whose sends start as soon as they are handed over;
-- sends of those channels in flight under the builds before this one get it too, so that none is taken for unstarted.
UPDATE messages SET script_baseline = -1
WHERE status = 'sending' AND handed_at IS NOT NULL AND script_baseline IS NULL AND channel IS NOT 'messages';
