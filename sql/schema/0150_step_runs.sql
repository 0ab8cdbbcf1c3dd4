-- step_runs: one row per step of a workflow-mode run, moved by the procedures along
--   waiting -> ready -> queued -> running -> succeeded | failed | skipped (| cancelled)
-- (the full table of moves is stated, and enforced, in 0490_step_runs_guard.sql). The DAG moves
-- by counters: remaining_deps is the number of dependencies not yet settled.
--
-- A map step (steps.map_over) has one more row per element of its array, named
-- "<step>[<index>]" (task = the index, item = the element): each element is a task with its own
-- attempts, lease and job, moved like any step. The step's own row is running, with no job,
-- while its elements run; remaining_tasks counts those not yet succeeded, and when it reaches 0
-- the step succeeds with their outputs in element order (0520_settle_steps.sql).
--
-- Status lists in its checks are array constants, not IN lists (why: migrations/027_compact_checks.sql).

CREATE TABLE qflow.step_runs (
    run_id           bigint      NOT NULL REFERENCES qflow.runs ON DELETE CASCADE,
    step             text        NOT NULL,
    workflow         text        NOT NULL,
    version          integer     NOT NULL,
    status           text        NOT NULL
                     CHECK (status = ANY ('{waiting,ready,queued,running,succeeded,failed,skipped,cancelled}'::text[])),
    remaining_deps   integer     NOT NULL CHECK (remaining_deps >= 0),
    priority         smallint    NOT NULL,
    -- attempt counts every dispatch of the step; the retry budget counts from first_attempt,
    -- which retry_run and graceful release move forward.
    attempt          integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    first_attempt    integer     NOT NULL DEFAULT 1 CHECK (first_attempt >= 1),
    output           jsonb,
    error            text,
    job_id           bigint,
    worker           text,
    queued_at        timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    next_attempt_at  timestamptz,
    -- What the running attempt last said about how far it got (qflow.report_progress).
    progress         jsonb       CHECK (jsonb_typeof(progress) = 'object'),
    progress_at      timestamptz,
    -- The definition's step: the row's own name, or the map step an element belongs to.
    def_step         text        NOT NULL GENERATED ALWAYS AS (split_part(step, '[', 1)) STORED,
    task             integer     CHECK (task >= 0),
    item             jsonb,
    tasks            integer     CHECK (tasks >= 0),
    remaining_tasks  integer     CHECK (remaining_tasks BETWEEN 0 AND tasks),
    -- The hash of a cached step's input, set when it became ready (0518_prepare_steps.sql).
    input_hash       text,
    PRIMARY KEY (run_id, step),
    CONSTRAINT step_runs_element CHECK ((task IS NOT NULL) = (step <> def_step) AND (task IS NULL OR tasks IS NULL)),
    CONSTRAINT step_runs_running_has_lease
        CHECK ((status = 'running' AND tasks IS NULL) = (lease_expires_at IS NOT NULL)),
    CONSTRAINT step_runs_finished_when_settled
        CHECK ((finished_at IS NOT NULL) = (status = ANY ('{succeeded,failed,skipped,cancelled}'::text[]))),
    CONSTRAINT step_runs_waits_for_deps CHECK (status = ANY ('{waiting,cancelled,skipped}'::text[]) OR remaining_deps = 0),
    CONSTRAINT step_runs_dispatched_has_job
        CHECK (status <> ALL ('{queued,running}'::text[]) OR job_id IS NOT NULL OR tasks IS NOT NULL),
    CONSTRAINT step_runs_succeeded_has_output CHECK (status <> 'succeeded' OR output IS NOT NULL),
    -- (A step skipped by its condition, or because every dependency was, never ran; one whose
    -- output a forked run reuses did not run in it.)
    CONSTRAINT step_runs_dispatched_has_attempt
        CHECK (status <> ALL ('{queued,running,failed}'::text[]) OR attempt >= 1),
    CONSTRAINT step_runs_running_has_started CHECK (status <> 'running' OR started_at IS NOT NULL)
);

-- Live-state partial indexes: they stay small however much history accumulates.
CREATE INDEX step_runs_in_flight ON qflow.step_runs (workflow, def_step) WHERE status IN ('queued', 'running');
CREATE INDEX step_runs_ready ON qflow.step_runs (workflow, def_step, priority, run_id) WHERE status = 'ready';
CREATE INDEX step_runs_lease ON qflow.step_runs (lease_expires_at) WHERE status = 'running';
