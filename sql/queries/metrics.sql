-- Queries of the metrics reporter: one worker at a time (the holder of an advisory lock) reads
-- these every few seconds and exports them, so a scrape never touches the database.

-- name: TryReporterLock :one
SELECT pg_try_advisory_lock(7243002) AS locked;

-- name: QueueStats :many
-- Work that is due and waiting for a worker, per queue (worker class): steps queued and due
-- but not yet claimed, and legacy runs not yet picked up (they wait in the cpu queue). Every
-- known class appears, with zero when nothing waits. Reads only live rows (partial indexes).
SELECT q.queue::text AS queue,
       coalesce(w.depth, 0)::bigint AS depth,
       coalesce(w.oldest_age_seconds, 0)::double precision AS oldest_age_seconds
  FROM (SELECT DISTINCT worker_class AS queue FROM qflow.steps
        UNION SELECT unnest(classes) FROM qflow.workers) q
  LEFT JOIN (SELECT queue, count(*) AS depth, extract(epoch FROM now() - min(since)) AS oldest_age_seconds
               FROM (SELECT s.worker_class AS queue, greatest(sr.queued_at, sr.next_attempt_at) AS since
                       FROM qflow.step_runs sr
                       JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
                      WHERE sr.status = 'queued' AND (sr.next_attempt_at IS NULL OR sr.next_attempt_at <= now())
                     UNION ALL
                     SELECT 'cpu', r.created_at FROM qflow.runs r WHERE r.status = 'pending' AND r.mode = 'legacy') waiting
              GROUP BY queue) w ON w.queue = q.queue;

-- name: LiveWorkers :many
-- Workers whose heartbeat is recent, per class they serve. Recent as of the data read: on a
-- lagging read replica (qflow.staleness) a heartbeat not yet replayed is not a dead worker.
SELECT c::text AS class, count(*)::bigint AS workers
  FROM qflow.workers w, unnest(w.classes) AS c
 WHERE w.last_seen_at > (SELECT as_of FROM qflow.staleness()) - make_interval(secs => @stale_after_seconds::double precision)
 GROUP BY c;

-- name: FinishedRunsSince :many
-- Runs that finished after the watermark and at least lag_seconds before the time the data
-- read describes (a finish time is its transaction's start, so the lag lets slow commits land
-- before the watermark passes them; on a read replica that time is its last replayed commit,
-- so runs it has not replayed yet are never passed over).
SELECT id, workflow, mode, status,
       extract(epoch FROM finished_at - coalesce(started_at, created_at))::double precision AS duration_seconds,
       finished_at
  FROM qflow.runs
 WHERE finished_at IS NOT NULL
   AND (finished_at, id) > (@after_time::timestamptz, @after_id::bigint)
   AND finished_at <= (SELECT as_of FROM qflow.staleness()) - make_interval(secs => @lag_seconds::double precision)
 ORDER BY finished_at, id
 LIMIT 5000;

-- name: CachedStepsOfRuns :many
-- The steps of the given (finished) runs whose output came from the cache: the reporter counts
-- them in qflow_steps_total with outcome "cached" when their run finishes (no process ran them).
SELECT r.workflow::text AS workflow, split_part(a.step, '[', 1)::text AS step, count(*)::bigint AS hits
  FROM qflow.step_attempts a
  JOIN qflow.runs r ON r.id = a.run_id
 WHERE a.run_id = ANY (@run_ids::bigint[]) AND a.status = 'cached'
 GROUP BY 1, 2;
