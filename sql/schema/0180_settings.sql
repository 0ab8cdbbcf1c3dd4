-- settings: operator settings of the engine, one row per setting, changed with a plain UPDATE.
--
--   max_input_bytes   the largest run input accepted, in bytes of its JSON text
--   retention_days    how long finished runs are kept (qflow.retention overrides it per
--                     workflow; 0960_prune_runs.sql deletes them)

CREATE TABLE qflow.settings (
    key         text        PRIMARY KEY CHECK (key IN ('max_input_bytes', 'retention_days')),
    value       bigint      NOT NULL,
    description text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- jsonb itself stops at 256 MiB.
    CHECK (key <> 'max_input_bytes' OR value BETWEEN 2 AND 268435456),
    CONSTRAINT settings_retention_days_check CHECK (key <> 'retention_days' OR value BETWEEN 1 AND 36500)
);

INSERT INTO qflow.settings (key, value, description)
VALUES ('max_input_bytes', 1048576, 'the largest run input accepted, in bytes of its JSON text'),
       ('retention_days', 30, 'finished runs older than this many days are deleted (qflow.retention overrides it per workflow)')
ON CONFLICT (key) DO NOTHING;
