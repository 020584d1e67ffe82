-- A failed message is retried once: POST /retry looks for an existing retry of it in the transaction that would add
-- another (MessagesApi.Retry). Only retries are in this index.
CREATE INDEX ix_messages_retry_of ON messages(retry_of) WHERE retry_of IS NOT NULL;
