-- Live progress of running steps (sql/schema/0150_step_runs.sql, 0560_report_progress.sql).
ALTER TABLE qflow.step_runs
    ADD COLUMN progress    jsonb CHECK (jsonb_typeof(progress) = 'object'),
    ADD COLUMN progress_at timestamptz;
