-- step_stats: step statistics over a time window; the rules common to both (windows,
-- percentiles, rounding) are stated in 0860_workflow_stats.sql. One row per step of every
-- workflow's current version, plus any step of an older version that made attempts in the
-- window. The elements of a map step count as its step runs (each its own attempts).
--
--   workflow, step   the step
--   position         its place in the current version's topological order; NULL for a step
--                    only older versions have
--   step_runs        step runs that made at least one attempt
--   attempts         attempts, whatever their status (running ones included)
--   succeeded        succeeded attempts
--   failed           failed attempts, timed-out ones included (the worker died or the handler
--                    overran its timeout)
--   timed_out        the timed-out share of failed
--   cancelled        attempts cancelled with their run or released at worker shutdown
--   failure_ratio    failed / (succeeded + failed), 0..1 (4 decimals); NULL when none finished
--   p50_duration_ms  median duration of succeeded, failed and timed-out attempts, ms
--   p95_duration_ms  95th percentile of the same
--   retries          attempts beyond the first of each step run
CREATE FUNCTION qflow.step_stats(p_window interval, p_workflow text DEFAULT NULL)
RETURNS TABLE (workflow text, step text, "position" integer, step_runs bigint, attempts bigint,
               succeeded bigint, failed bigint, timed_out bigint, cancelled bigint,
               failure_ratio double precision, p50_duration_ms double precision, p95_duration_ms double precision,
               retries bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF p_window IS NULL OR p_window <= interval '0' THEN
        RAISE EXCEPTION 'qflow: the stats window must be a positive interval, got %', coalesce(p_window::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH attempts AS (
        SELECT r.workflow, split_part(a.step, '[', 1) AS step, a.step AS row_step, a.run_id, a.status,
               extract(epoch FROM a.finished_at - a.started_at)::double precision * 1000 AS duration_ms
          FROM qflow.runs r
          JOIN qflow.step_attempts a ON a.run_id = r.id
         WHERE r.created_at >= now() - p_window
           AND (p_workflow IS NULL OR r.workflow = p_workflow)
    ), per_step AS (
        SELECT a.workflow, a.step,
               count(DISTINCT (a.run_id, a.row_step)) AS step_runs,
               count(*) AS attempts,
               count(*) FILTER (WHERE a.status = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE a.status IN ('failed', 'timed_out')) AS failed,
               count(*) FILTER (WHERE a.status = 'timed_out') AS timed_out,
               count(*) FILTER (WHERE a.status = 'cancelled') AS cancelled,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms)
                   FILTER (WHERE a.status IN ('succeeded', 'failed', 'timed_out')) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms)
                   FILTER (WHERE a.status IN ('succeeded', 'failed', 'timed_out')) AS p95
          FROM attempts a
         GROUP BY a.workflow, a.step
    ), current_steps AS (
        SELECT s.workflow, s.name AS step, s.position
          FROM qflow.steps s
         WHERE s.version = (SELECT max(w.version) FROM qflow.workflows w WHERE w.name = s.workflow)
           AND (p_workflow IS NULL OR s.workflow = p_workflow)
    )
    SELECT coalesce(c.workflow, p.workflow), coalesce(c.step, p.step), c.position,
           coalesce(p.step_runs, 0), coalesce(p.attempts, 0), coalesce(p.succeeded, 0), coalesce(p.failed, 0),
           coalesce(p.timed_out, 0), coalesce(p.cancelled, 0),
           round(p.failed::numeric / nullif(p.succeeded + p.failed, 0), 4)::double precision,
           round(p.p50::numeric, 3)::double precision, round(p.p95::numeric, 3)::double precision,
           coalesce(p.attempts - p.step_runs, 0)
      FROM current_steps c
      FULL JOIN per_step p ON p.workflow = c.workflow AND p.step = c.step
     ORDER BY 1, c.position NULLS LAST, 2;
END $$;

-- The view: the last 24 hours, columns spelled out for sqlc (see 0860_workflow_stats.sql).
CREATE VIEW qflow.step_stats AS
SELECT s.workflow::text AS workflow, s.step::text AS step, s.position::integer AS "position",
       s.step_runs::bigint AS step_runs, s.attempts::bigint AS attempts, s.succeeded::bigint AS succeeded,
       s.failed::bigint AS failed, s.timed_out::bigint AS timed_out, s.cancelled::bigint AS cancelled,
       s.failure_ratio::double precision AS failure_ratio,
       s.p50_duration_ms::double precision AS p50_duration_ms, s.p95_duration_ms::double precision AS p95_duration_ms,
       s.retries::bigint AS retries
  FROM qflow.step_stats(interval '24 hours') AS s;
