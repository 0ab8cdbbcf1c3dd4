-- runs: one row per run. A plain INSERT starts one (the triggers of
-- sql/schema/0450_runs_prepare.sql and 0460_runs_start.sql do the rest); every status lives in a
-- CHECK so an impossible state cannot be written, and the guard of 0480_runs_guard.sql refuses
-- moves the state machine does not make.
--
-- Status lists in its checks are array constants, not IN lists (why: migrations/027_compact_checks.sql).

CREATE TABLE qflow.runs (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow        text        NOT NULL,
    version         integer     NOT NULL,
    input           jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status = ANY ('{pending,running,succeeded,failed,cancelled,timed_out}'::text[])),
    mode            text        NOT NULL CHECK (mode = ANY ('{workflow,legacy}'::text[])),
    -- 1 is dispatched first, 4 last (River's convention).
    priority        smallint    NOT NULL DEFAULT 2 CHECK (priority BETWEEN 1 AND 4),
    deadline        timestamptz NOT NULL,
    remaining_steps integer     NOT NULL DEFAULT 0 CHECK (remaining_steps >= 0),
    attempt         integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),   -- legacy mode only
    output          jsonb,
    error           text,
    idempotency_key text        UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    -- The schedule whose fire started the run (0750_fire_schedule.sql), if one did.
    schedule        text,
    -- The run this one was forked from and the step it runs from (0597_rerun_from.sql); the
    -- source may since have gone with retention.
    forked_from     bigint,
    forked_step     text,
    FOREIGN KEY (workflow, version) REFERENCES qflow.workflows,
    CHECK ((finished_at IS NOT NULL) = (status = ANY ('{succeeded,failed,cancelled,timed_out}'::text[]))),
    CHECK (status <> 'succeeded' OR remaining_steps = 0 OR mode = 'legacy'),
    CONSTRAINT runs_running_has_started CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT runs_forked_whole CHECK ((forked_from IS NULL) = (forked_step IS NULL)),
    CONSTRAINT runs_forked_workflow_mode CHECK (forked_from IS NULL OR mode = 'workflow')
);

CREATE INDEX runs_live_deadline ON qflow.runs (deadline) WHERE status IN ('pending', 'running');
CREATE INDEX runs_workflow_status ON qflow.runs (workflow, status);
-- The stats functions start from it: their cost follows the runs in the window.
CREATE INDEX runs_created_at ON qflow.runs (created_at);
-- The metrics reporter reads finished runs incrementally by finish time: each read is
-- proportional to what finished since the last one, however much history the table holds.
CREATE INDEX runs_finished ON qflow.runs (finished_at, id) WHERE finished_at IS NOT NULL;
