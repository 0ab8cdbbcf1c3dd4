-- The sweep checks the queued steps for a lost job a sixteenth at a time
-- (sql/schema/0270_sweep_slices.sql, 0625_lost_step_jobs.sql).
CREATE SEQUENCE qflow.sweep_slices MINVALUE 0 MAXVALUE 15 START 0 CYCLE;
