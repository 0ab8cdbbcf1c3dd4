-- sweep_slices: which sixteenth of the queued steps the next sweep checks for a job that is gone
-- or finalized (0625_lost_step_jobs.sql). A cycling sequence, so successive sweeps take the
-- slices in turn whoever runs them and however often, and every queued step is checked once in
-- sixteen sweeps (eight seconds at the default interval).

CREATE SEQUENCE qflow.sweep_slices MINVALUE 0 MAXVALUE 15 START 0 CYCLE;
