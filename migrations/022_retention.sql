-- Retention of finished runs: the default (qflow.settings retention_days) and per-workflow
-- overrides (sql/schema/0180_settings.sql, 0250_retention.sql).
ALTER TABLE qflow.settings
    DROP CONSTRAINT settings_key_check,
    ADD CONSTRAINT settings_key_check CHECK (key IN ('max_input_bytes', 'retention_days')),
    ADD CONSTRAINT settings_retention_days_check CHECK (key <> 'retention_days' OR value BETWEEN 1 AND 36500);

INSERT INTO qflow.settings (key, value, description)
VALUES ('retention_days', 30, 'finished runs older than this many days are deleted (qflow.retention overrides it per workflow)')
ON CONFLICT (key) DO NOTHING;

CREATE TABLE qflow.retention (
    workflow text    PRIMARY KEY,
    days     integer NOT NULL CHECK (days BETWEEN 1 AND 36500)
);
