-- Schedules (sql/schema/0240_schedules.sql) and the schedule a run was started by
-- (sql/schema/0140_runs.sql).
ALTER TABLE qflow.runs ADD COLUMN schedule text;

CREATE TABLE qflow.schedules (
    name         text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    workflow     text        NOT NULL,
    cron         text        NOT NULL,
    input        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
    enabled      boolean     NOT NULL DEFAULT true,
    time_zone    text        NOT NULL DEFAULT 'UTC',
    missed       text        NOT NULL DEFAULT 'run_once' CHECK (missed IN ('run_once', 'skip')),
    last_fire_at timestamptz,
    last_run_id  bigint,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
