-- Availability from this agent's history asks for the newest iMessage outcome to an address (delivered or read: blue;
-- error 22: gray), for one address or for every lead of a bulk send. Through ix_messages_phone it read every message
-- ever sent to the address, and each one's table row: a bulk to 10,000 leads holding 10 messages each read 100,000
-- rows (71 ms, sqlite3 .timer), growing with the history. These indexes hold only the outcome rows, newest last per
-- address (AvailabilityService.NewestOutcome, OutcomesOfMany): one probe per address, whatever the history. An
-- iMessage row has the address it went to in recipient_phone, or in recipient_email when it has no phone.
CREATE INDEX ix_messages_outcome_phone ON messages(recipient_phone, updated_at)
    WHERE direction = 'outbound' AND type = 'imessage'
      AND ((status = 'sent' AND delivery IN ('delivered', 'read')) OR error_code = 'imessage_unavailable');
CREATE INDEX ix_messages_outcome_email ON messages(recipient_email, updated_at)
    WHERE recipient_phone IS NULL AND direction = 'outbound' AND type = 'imessage'
      AND ((status = 'sent' AND delivery IN ('delivered', 'read')) OR error_code = 'imessage_unavailable');
