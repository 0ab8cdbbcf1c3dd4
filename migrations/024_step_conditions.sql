-- Conditional steps (sql/schema/0110_steps.sql, 0515_step_skips.sql).
ALTER TABLE qflow.steps ADD COLUMN condition jsonb CHECK (jsonb_typeof(condition) = 'object');

-- A step skipped by its condition, or because every dependency was, never ran: no attempt.
ALTER TABLE qflow.step_runs
    DROP CONSTRAINT step_runs_dispatched_has_attempt,
    ADD CONSTRAINT step_runs_dispatched_has_attempt
        CHECK (status NOT IN ('queued', 'running', 'succeeded', 'failed') OR attempt >= 1);
