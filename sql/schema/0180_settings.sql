-- settings: operator settings of the engine, one row per setting, changed with a plain UPDATE.

CREATE TABLE qflow.settings (
    key         text        PRIMARY KEY CHECK (key IN ('max_input_bytes')),
    value       bigint      NOT NULL,
    description text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- jsonb itself stops at 256 MiB.
    CHECK (key <> 'max_input_bytes' OR value BETWEEN 2 AND 268435456)
);

INSERT INTO qflow.settings (key, value, description)
VALUES ('max_input_bytes', 1048576, 'the largest run input accepted, in bytes of its JSON text')
ON CONFLICT (key) DO NOTHING;
