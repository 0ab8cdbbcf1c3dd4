-- run_overview: one row per run, what a person asks first with psql. Steps are the
-- definition's steps (a map step once, however many elements it has); retries count elements'.
CREATE VIEW qflow.run_overview AS
SELECT r.id, r.workflow, r.version, r.mode, r.status, r.priority,
       r.created_at, r.started_at, r.finished_at, r.deadline,
       round(extract(epoch FROM (coalesce(r.finished_at, now()) - r.started_at)) * 1000)::bigint AS duration_ms,
       count(sr.step) FILTER (WHERE sr.task IS NULL)                                  AS steps_total,
       count(sr.step) FILTER (WHERE sr.task IS NULL AND sr.status = 'succeeded')     AS steps_succeeded,
       count(sr.step) FILTER (WHERE sr.task IS NULL AND sr.status IN ('queued', 'running')) AS steps_active,
       count(sr.step) FILTER (WHERE sr.task IS NULL AND sr.status = 'failed')        AS steps_failed,
       coalesce(sum(greatest(sr.attempt - 1, 0)), 0)             AS retries,
       r.error, r.input, r.output
  FROM qflow.runs r
  LEFT JOIN qflow.step_runs sr ON sr.run_id = r.id
 GROUP BY r.id;
