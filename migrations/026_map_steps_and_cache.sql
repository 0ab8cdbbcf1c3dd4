-- Map steps and input-keyed caching (sql/schema/0110_steps.sql, 0150_step_runs.sql,
-- 0160_step_attempts.sql, 0260_step_cache.sql). The unnamed checks of step_runs this changes
-- get names, the same in a fresh database.
ALTER TABLE qflow.steps
    ADD COLUMN map_over text[] CHECK (cardinality(map_over) >= 1),
    ADD COLUMN max_items integer NOT NULL DEFAULT 10000 CHECK (max_items BETWEEN 1 AND 1000000),
    ADD COLUMN cache_ttl_ms bigint CHECK (cache_ttl_ms > 0),
    ADD COLUMN cache_key text[] CHECK (cardinality(cache_key) >= 1);

ALTER TABLE qflow.step_runs
    ADD COLUMN def_step text NOT NULL GENERATED ALWAYS AS (split_part(step, '[', 1)) STORED,
    ADD COLUMN task integer CHECK (task >= 0),
    ADD COLUMN item jsonb,
    ADD COLUMN tasks integer CHECK (tasks >= 0),
    ADD COLUMN remaining_tasks integer CHECK (remaining_tasks BETWEEN 0 AND tasks),
    ADD COLUMN input_hash text,
    ADD CONSTRAINT step_runs_element CHECK ((task IS NOT NULL) = (step <> def_step) AND (task IS NULL OR tasks IS NULL)),
    DROP CONSTRAINT step_runs_check,
    ADD CONSTRAINT step_runs_running_has_lease
        CHECK ((status = 'running' AND tasks IS NULL) = (lease_expires_at IS NOT NULL)),
    DROP CONSTRAINT step_runs_check3,
    ADD CONSTRAINT step_runs_dispatched_has_job
        CHECK (status NOT IN ('queued', 'running') OR job_id IS NOT NULL OR tasks IS NOT NULL);
ALTER TABLE qflow.step_runs RENAME CONSTRAINT step_runs_check1 TO step_runs_finished_when_settled;
ALTER TABLE qflow.step_runs RENAME CONSTRAINT step_runs_check2 TO step_runs_waits_for_deps;

DROP INDEX qflow.step_runs_in_flight;
DROP INDEX qflow.step_runs_ready;
CREATE INDEX step_runs_in_flight ON qflow.step_runs (workflow, def_step) WHERE status IN ('queued', 'running');
CREATE INDEX step_runs_ready ON qflow.step_runs (workflow, def_step, priority, run_id) WHERE status = 'ready';

ALTER TABLE qflow.step_attempts
    DROP CONSTRAINT step_attempts_status_check,
    ADD CONSTRAINT step_attempts_status_check
        CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'cached'));

CREATE TABLE qflow.step_cache (
    workflow   text        NOT NULL,
    version    integer     NOT NULL,
    step       text        NOT NULL,
    input_hash text        NOT NULL,
    output     jsonb       NOT NULL,
    run_id     bigint      NOT NULL REFERENCES qflow.runs ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (workflow, version, step, input_hash),
    FOREIGN KEY (workflow, version, step) REFERENCES qflow.steps ON DELETE CASCADE
);
CREATE INDEX step_cache_run ON qflow.step_cache (run_id);
CREATE INDEX step_cache_expires ON qflow.step_cache (expires_at);
