-- Queries of the DAG views (`qflow dag`, `qflow status`, the web view's DAGs): what a step is
-- besides a box with arrows -- a map step and what it maps over, a cached step and on what, a
-- condition, on_failure -- and which steps a forked run took from its source.

-- name: DAGSteps :many
-- The steps of one version of a workflow (NULL: the current one, the one new runs pin) in
-- topological order, with their dependencies and marks.
SELECT s.name, s.version, s.worker_class, s.max_concurrency, s.on_failure, s.condition,
       s.map_over, s.max_items, s.cache_ttl_ms, s.cache_key,
       coalesce((SELECT array_agg(d.depends_on ORDER BY d.depends_on)::text[] FROM qflow.step_deps d
                  WHERE d.workflow = s.workflow AND d.version = s.version AND d.step = s.name), '{}')::text[] AS depends_on
  FROM qflow.steps s
 WHERE s.workflow = @workflow
   AND s.version = coalesce(sqlc.narg(version)::integer, (SELECT max(w.version) FROM qflow.workflows w WHERE w.name = @workflow))
 ORDER BY s.position;

-- name: ForkReused :many
-- The steps a forked run took from its source run instead of running them: those not
-- downstream of its forked_step that it holds settled without an attempt, as fork_steps
-- (sql/schema/0465_fork_steps.sql) left them. A step downstream that was skipped in the fork
-- itself is not one. None for a run that is not a fork.
WITH RECURSIVE fork AS (
    SELECT r.id, r.workflow, r.version, r.forked_step FROM qflow.runs r
     WHERE r.id = @run_id AND r.forked_step IS NOT NULL
), downstream(step) AS (
    SELECT f.forked_step FROM fork f
    UNION
    SELECT d.step
      FROM qflow.step_deps d
      JOIN downstream ds ON d.depends_on = ds.step
      JOIN fork f ON d.workflow = f.workflow AND d.version = f.version
)
SELECT sr.step
  FROM qflow.step_runs sr
  JOIN fork f ON sr.run_id = f.id
 WHERE sr.task IS NULL AND sr.attempt = 0 AND sr.status IN ('succeeded', 'skipped')
   AND sr.step NOT IN (SELECT ds.step FROM downstream ds)
 ORDER BY sr.step;
