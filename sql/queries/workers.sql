-- Queries of worker processes about themselves and the definitions they bring.

-- name: RegisterWorkflow :one
SELECT qflow.register_workflow(@definition) AS version;

-- name: HeartbeatWorker :exec
-- A worker restarted under the same --id is a new process: its row says so.
INSERT INTO qflow.workers (id, host, pid, classes)
VALUES (@id, @host, @pid, @classes)
ON CONFLICT (id) DO UPDATE
   SET last_seen_at = now(), classes = excluded.classes, host = excluded.host, pid = excluded.pid,
       started_at = CASE WHEN (workers.host, workers.pid) IS DISTINCT FROM (excluded.host, excluded.pid)
                         THEN now() ELSE workers.started_at END;

-- name: RemoveWorker :exec
DELETE FROM qflow.workers WHERE id = @id;

-- name: Sweep :exec
CALL qflow.sweep();

-- name: TryLockWorker :one
-- The worker's liveness lock, on its own connection (sql/schema/0332_worker_lock_key.sql).
SELECT pg_try_advisory_lock(qflow.worker_lock_key(@worker::text)) AS locked;

-- name: ListenCancel :exec
-- Notifications of attempts the worker runs that are no longer wanted (0337_notify_cancel.sql).
LISTEN qflow_cancel;

-- name: TrySweepLock :one
-- One sweep at a time across the fleet: whoever gets this runs it.
SELECT pg_try_advisory_lock(hashtextextended('qflow.sweep', 0)) AS locked;

-- name: SweepUnlock :exec
SELECT pg_advisory_unlock(hashtextextended('qflow.sweep', 0));

-- name: EndedAttempts :many
-- Of the attempts a worker is running (run_id, step, attempt; step '' for a legacy run's job),
-- those the database no longer has running on it: their cancel notifications were sent while
-- the worker's listening connection was down.
SELECT x.run_id::bigint AS run_id, x.step::text AS step, x.attempt::integer AS attempt
  FROM jsonb_to_recordset(@attempts::jsonb) AS x(run_id bigint, step text, attempt integer)
 WHERE NOT EXISTS (SELECT 1 FROM qflow.step_runs sr
                    WHERE x.step <> '' AND sr.run_id = x.run_id AND sr.step = x.step AND sr.attempt = x.attempt
                      AND sr.status = 'running' AND sr.worker = @worker::text)
   AND NOT EXISTS (SELECT 1 FROM qflow.runs r
                    WHERE x.step = '' AND r.id = x.run_id AND r.mode = 'legacy' AND r.status = 'running'
                      AND r.attempt = x.attempt);

-- name: DueSchedules :many
-- The enabled schedules, with where their fires are counted from.
SELECT s.name, s.cron, s.time_zone, s.missed, coalesce(s.last_fire_at, s.created_at)::timestamptz AS since,
       (s.error IS NOT NULL)::boolean AS refused
  FROM qflow.schedules s
 WHERE s.enabled
 ORDER BY s.name;

-- name: FireSchedule :one
SELECT coalesce(qflow.fire_schedule(@name::text, @due::timestamptz, @run::boolean), 0)::bigint AS run_id;

-- name: RefuseSchedule :exec
SELECT qflow.refuse_schedule(@name::text, @error::text);

-- name: TrySchedulerLock :one
-- One scheduler pass at a time across the fleet (fires are exactly once without it; this
-- spares the database the other workers' passes).
SELECT pg_try_advisory_lock(hashtextextended('qflow.scheduler', 0)) AS locked;

-- name: SchedulerUnlock :exec
SELECT pg_advisory_unlock(hashtextextended('qflow.scheduler', 0));
