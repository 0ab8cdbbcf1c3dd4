-- Queries of operators and the CLI: start, inspect, cancel and retry runs.

-- name: StartRun :one
SELECT qflow.start_run(@workflow, @input, sqlc.narg(idempotency_key), @priority) AS id;

-- name: RunStatus :one
SELECT qflow.status(@run_id) AS status;

-- name: RunMetrics :one
SELECT qflow.metrics(@run_id) AS metrics;

-- name: CancelRun :one
SELECT qflow.cancel_run(@run_id) AS cancelled;

-- name: RetryRun :one
SELECT qflow.retry_run(@run_id) AS retried;

-- name: ListWorkflows :many
SELECT w.name::text AS name, w.version::integer AS version, w.steps::text[] AS steps, w.description::text AS description,
       w.pending::bigint AS pending, w.running::bigint AS running, w.succeeded::bigint AS succeeded,
       w.failed::bigint AS failed, w.cancelled::bigint AS cancelled, w.timed_out::bigint AS timed_out
  FROM qflow.list_workflows() AS w;

-- name: ListSchedules :many
SELECT s.name, s.workflow, s.cron, s.time_zone, s.missed, s.enabled, s.input, s.last_fire_at, s.last_run_id, s.error
  FROM qflow.schedules s
 ORDER BY s.name;

-- name: AddSchedule :exec
-- A schedule added again replaces its settings; its fires go on from its last one.
INSERT INTO qflow.schedules (name, workflow, cron, input, time_zone, missed, enabled)
VALUES (@name, @workflow, @cron, @input, @time_zone, @missed, true)
ON CONFLICT (name) DO UPDATE
   SET workflow = excluded.workflow, cron = excluded.cron, input = excluded.input,
       time_zone = excluded.time_zone, missed = excluded.missed, enabled = true, error = NULL;

-- name: RemoveSchedule :execrows
DELETE FROM qflow.schedules WHERE name = @name;

-- name: RerunFrom :one
SELECT qflow.rerun_from(@run_id, @step) AS id;
