-- The CHECK constraints of the three hot tables list their statuses as one array constant
-- instead of IN lists (sql/schema/0140_runs.sql, 0150_step_runs.sql, 0160_step_attempts.sql):
-- Postgres reads every CHECK constraint back from its stored text at the start of each
-- statement that writes the table, and an IN list's text is about twice an array constant's.
-- Same rules, same names; adding them checks every existing row.
ALTER TABLE qflow.runs
    DROP CONSTRAINT runs_status_check,
    ADD CONSTRAINT runs_status_check CHECK (status = ANY ('{pending,running,succeeded,failed,cancelled,timed_out}'::text[])),
    DROP CONSTRAINT runs_mode_check,
    ADD CONSTRAINT runs_mode_check CHECK (mode = ANY ('{workflow,legacy}'::text[])),
    DROP CONSTRAINT runs_check,
    ADD CONSTRAINT runs_check CHECK ((finished_at IS NOT NULL) = (status = ANY ('{succeeded,failed,cancelled,timed_out}'::text[])));

ALTER TABLE qflow.step_runs
    DROP CONSTRAINT step_runs_status_check,
    ADD CONSTRAINT step_runs_status_check
        CHECK (status = ANY ('{waiting,ready,queued,running,succeeded,failed,skipped,cancelled}'::text[])),
    DROP CONSTRAINT step_runs_finished_when_settled,
    ADD CONSTRAINT step_runs_finished_when_settled
        CHECK ((finished_at IS NOT NULL) = (status = ANY ('{succeeded,failed,skipped,cancelled}'::text[]))),
    DROP CONSTRAINT step_runs_waits_for_deps,
    ADD CONSTRAINT step_runs_waits_for_deps CHECK (status = ANY ('{waiting,cancelled,skipped}'::text[]) OR remaining_deps = 0),
    DROP CONSTRAINT step_runs_dispatched_has_job,
    ADD CONSTRAINT step_runs_dispatched_has_job
        CHECK (status <> ALL ('{queued,running}'::text[]) OR job_id IS NOT NULL OR tasks IS NOT NULL),
    DROP CONSTRAINT step_runs_dispatched_has_attempt,
    ADD CONSTRAINT step_runs_dispatched_has_attempt CHECK (status <> ALL ('{queued,running,failed}'::text[]) OR attempt >= 1);

ALTER TABLE qflow.step_attempts
    DROP CONSTRAINT step_attempts_status_check,
    ADD CONSTRAINT step_attempts_status_check
        CHECK (status = ANY ('{running,succeeded,failed,timed_out,cancelled,cached}'::text[])),
    DROP CONSTRAINT step_attempts_outcome_check,
    ADD CONSTRAINT step_attempts_outcome_check CHECK (outcome = ANY ('{completed,retry,skipped,failed,released}'::text[]));
