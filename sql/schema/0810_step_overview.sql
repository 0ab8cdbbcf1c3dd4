-- step_overview: one row per step of a run, and per element of a map step (task: its index;
-- the map step's own row has tasks, its element count, and remaining_tasks).
CREATE VIEW qflow.step_overview AS
SELECT sr.run_id, sr.workflow, sr.version, s.position, sr.step, sr.status, s.worker_class,
       sr.attempt, s.max_attempts, sr.remaining_deps,
       sr.queued_at, sr.started_at, sr.finished_at, sr.next_attempt_at, sr.lease_expires_at, sr.worker,
       round(extract(epoch FROM (sr.finished_at - sr.started_at)) * 1000)::bigint AS duration_ms,
       sr.error, sr.output, sr.progress, sr.progress_at,
       sr.def_step, sr.task, sr.tasks, sr.remaining_tasks
  FROM qflow.step_runs sr
  JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step;
