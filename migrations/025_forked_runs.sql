-- Forked runs (sql/schema/0140_runs.sql, 0597_rerun_from.sql): the run a fork came from and
-- the step it runs from; a step whose output a fork reuses did not run in it (attempt 0).
ALTER TABLE qflow.runs
    ADD COLUMN forked_from bigint,
    ADD COLUMN forked_step text,
    ADD CONSTRAINT runs_forked_whole CHECK ((forked_from IS NULL) = (forked_step IS NULL)),
    ADD CONSTRAINT runs_forked_workflow_mode CHECK (forked_from IS NULL OR mode = 'workflow');

ALTER TABLE qflow.step_runs
    DROP CONSTRAINT step_runs_dispatched_has_attempt,
    ADD CONSTRAINT step_runs_dispatched_has_attempt
        CHECK (status NOT IN ('queued', 'running', 'failed') OR attempt >= 1);
