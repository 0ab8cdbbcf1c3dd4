-- Queries of the web view (qflow ui). It reads what a psql user reads (run_overview,
-- step_overview, status(), list_workflows(), workflow_stats(), step_stats()), so a page and a
-- terminal never disagree. Columns that may be NULL in a view come back coalesced, with the
-- column that says whether they mean anything next to them (started_at, finished counts).

-- name: UIRuns :many
-- The newest runs that match the filters (a NULL filter matches all). The ids are chosen on
-- qflow.runs first, so the view aggregates only the rows shown, however long the history.
SELECT o.id, o.workflow, o.version, o.mode, o.status, o.created_at, o.started_at, o.finished_at,
       coalesce(o.duration_ms, 0)::bigint AS duration_ms,
       o.steps_total::bigint AS steps_total, o.steps_succeeded::bigint AS steps_succeeded,
       o.steps_failed::bigint AS steps_failed, o.retries::bigint AS retries, o.error
  FROM qflow.run_overview o
 WHERE o.id IN (SELECT r.id FROM qflow.runs r
                 WHERE (sqlc.narg(workflow)::text IS NULL OR r.workflow = sqlc.narg(workflow)::text)
                   AND (sqlc.narg(status)::text IS NULL OR r.status = sqlc.narg(status)::text)
                   AND (sqlc.narg(mode)::text IS NULL OR r.mode = sqlc.narg(mode)::text)
                 ORDER BY r.id DESC
                 LIMIT sqlc.arg(max_rows)::integer)
 ORDER BY o.id DESC;

-- name: UIRun :one
SELECT o.id, o.workflow, o.version, o.mode, o.status, o.priority, o.created_at, o.started_at, o.finished_at, o.deadline,
       coalesce(o.duration_ms, 0)::bigint AS duration_ms,
       o.steps_total::bigint AS steps_total, o.steps_succeeded::bigint AS steps_succeeded,
       o.steps_active::bigint AS steps_active, o.steps_failed::bigint AS steps_failed,
       o.retries::bigint AS retries, o.error, o.input, o.output
  FROM qflow.run_overview o
 WHERE o.id = @run_id;

-- name: UIRunSteps :many
-- The step rows of a run (none for a legacy run), in topological order: the definition's steps,
-- a map step once (its elements are counted in its node; qflow.step_overview lists them).
SELECT so.step, so.position, so.status, so.worker_class, so.attempt, so.max_attempts, so.queued_at,
       so.started_at, so.finished_at, so.next_attempt_at, so.worker,
       coalesce(so.duration_ms, 0)::bigint AS duration_ms, so.error, so.output
  FROM qflow.step_overview so
 WHERE so.run_id = @run_id AND so.task IS NULL
 ORDER BY so.position, so.step;

-- name: UIVersionSteps :many
-- The definition of one version of a workflow: every step with its settings and dependencies.
SELECT s.name, s.position, s.worker_class, s.max_attempts, s.retry_base_ms, s.retry_max_ms, s.timeout_ms,
       s.max_concurrency, s.on_failure,
       coalesce((SELECT array_agg(d.depends_on ORDER BY d.depends_on)::text[] FROM qflow.step_deps d
                  WHERE d.workflow = s.workflow AND d.version = s.version AND d.step = s.name), '{}')::text[] AS depends_on
  FROM qflow.steps s
 WHERE s.workflow = @workflow AND s.version = @version
 ORDER BY s.position;

-- name: UIWorkflowVersion :one
-- The workflow's current version: the one new runs pin.
SELECT w.name, w.version, w.timeout_ms, w.description, w.created_at, w.updated_at
  FROM qflow.workflows w
 WHERE w.name = @workflow
 ORDER BY w.version DESC
 LIMIT 1;

-- name: UIWorkflowStats :many
-- qflow.workflow_stats over the last window_seconds, for one workflow or (NULL) all. Rates and
-- percentiles are 0 where finished is 0 (the function says NULL).
SELECT s.workflow::text AS workflow, s.runs::bigint AS runs,
       s.pending::bigint AS pending, s.running::bigint AS running, s.succeeded::bigint AS succeeded,
       s.failed::bigint AS failed, s.cancelled::bigint AS cancelled, s.timed_out::bigint AS timed_out,
       s.finished::bigint AS finished,
       coalesce(s.success_rate, 0)::double precision AS success_rate,
       coalesce(s.error_rate, 0)::double precision AS error_rate,
       coalesce(s.p50_duration_ms, 0)::double precision AS p50_duration_ms,
       coalesce(s.p95_duration_ms, 0)::double precision AS p95_duration_ms,
       s.runs_per_minute::double precision AS runs_per_minute
  FROM qflow.workflow_stats(make_interval(secs => sqlc.arg(window_seconds)::double precision), sqlc.narg(workflow)::text) AS s;

-- name: UIStepStats :many
-- qflow.step_stats of one workflow over the last window_seconds. The ratio and percentiles are
-- 0 where succeeded + failed is 0 (the function says NULL).
SELECT s.step::text AS step, coalesce(s.position, -1)::integer AS position,
       s.step_runs::bigint AS step_runs, s.attempts::bigint AS attempts, s.succeeded::bigint AS succeeded,
       s.failed::bigint AS failed, s.timed_out::bigint AS timed_out, s.cancelled::bigint AS cancelled,
       coalesce(s.failure_ratio, 0)::double precision AS failure_ratio,
       coalesce(s.p50_duration_ms, 0)::double precision AS p50_duration_ms,
       coalesce(s.p95_duration_ms, 0)::double precision AS p95_duration_ms,
       s.retries::bigint AS retries
  FROM qflow.step_stats(make_interval(secs => sqlc.arg(window_seconds)::double precision), sqlc.arg(workflow)::text) AS s;
