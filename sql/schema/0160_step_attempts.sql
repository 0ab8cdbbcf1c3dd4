-- step_attempts: the history of a step's attempts, one row each, opened by a claim and closed
-- by its result (or by the sweep, a cancel or a release); a finished attempt is never changed.
-- outcome and next_* remember what a worker's result came to, so that the same result sent
-- again (its reply was lost) gets the same answer (0550_finish_steps.sql).
--
-- Status lists in its checks are array constants, not IN lists (why: migrations/027_compact_checks.sql).

CREATE TABLE qflow.step_attempts (
    run_id      bigint      NOT NULL,
    step        text        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    job_id      bigint,
    worker      text,
    -- cached: the step reused a cached output (0518_prepare_steps.sql); nothing ran.
    status      text        NOT NULL CHECK (status = ANY ('{running,succeeded,failed,timed_out,cancelled,cached}'::text[])),
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- What finish_steps made of the worker's result (NULL: the attempt ended otherwise, or runs).
    outcome      text       CHECK (outcome = ANY ('{completed,retry,skipped,failed,released}'::text[])),
    -- The step of the run this result's slot took next (eager dispatch), and its attempt.
    next_step    text,
    next_attempt integer,
    PRIMARY KEY (run_id, step, attempt),
    FOREIGN KEY (run_id, step) REFERENCES qflow.step_runs ON DELETE CASCADE,
    CHECK ((finished_at IS NULL) = (status = 'running'))
);
