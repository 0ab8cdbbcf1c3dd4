-- schedules: a row is a schedule. Each due fire of its cron expression, in its time zone,
-- starts one run of its workflow with its input, exactly once across the fleet: the fire's key
-- (schedule name and due time) is the run's idempotency key, so a second insert of the same
-- fire is impossible (0750_fire_schedule.sql). Workers compute due times with a cron library
-- (worker/schedules.go); the check on insert and update (0740_schedules_check.sql) refuses an
-- unknown workflow, a malformed expression or an unknown time zone with a clear error.
--
--   missed   what to do with fires that fell due while no worker ran: 'run_once' (one run,
--            for the latest of them) or 'skip' (none; the schedule goes on from its next fire)

CREATE TABLE qflow.schedules (
    name         text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    workflow     text        NOT NULL,
    cron         text        NOT NULL,
    input        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
    enabled      boolean     NOT NULL DEFAULT true,
    time_zone    text        NOT NULL DEFAULT 'UTC',
    missed       text        NOT NULL DEFAULT 'run_once' CHECK (missed IN ('run_once', 'skip')),
    -- The due time of the last fire taken (run or skipped); fires are counted from it, or from
    -- created_at for a new schedule.
    last_fire_at timestamptz,
    last_run_id  bigint,
    -- Why the workers' cron library refused the expression, if it did (the schedule does not fire).
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
