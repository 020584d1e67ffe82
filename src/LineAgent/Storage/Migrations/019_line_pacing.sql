-- The pacing settings each line last ran with (PacingRules.Fingerprint). A start with other settings (lineagent.json
-- changed: a cap raised, the window widened) decides the line's held messages again by the new ones: their stored
-- not_before came from the old settings, and a hold is only ever lengthened (StartupRecovery.ReleaseChangedHoldsAsync).
CREATE TABLE line_pacing (
    line_id     TEXT    PRIMARY KEY,
    settings    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
