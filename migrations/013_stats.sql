-- Workflow and step statistics over a time window, for psql users and the web view.
--
--   SELECT * FROM qflow.workflow_stats;                     -- the last 24 hours (a view)
--   SELECT * FROM qflow.workflow_stats('15 minutes');       -- any window (a function)
--   SELECT * FROM qflow.step_stats WHERE workflow = 'complexity_training';
--   SELECT * FROM qflow.step_stats('7 days', 'probe_chain');  -- one workflow: reads only its runs
--
-- A run belongs to a window when it was created inside it, and a step attempt when its run
-- was. Both functions therefore start from the runs_created_at index and reach attempts by
-- their primary key (run_id first): the cost follows the runs in the window, not the whole
-- history, and the attempt insert on the hot path needs no extra index.
--
-- "Finished" means terminal: succeeded, failed, cancelled or timed_out. Durations are those of
-- finished runs (from start, or creation for a legacy run never picked up, to finish, as the
-- metrics reporter measures them) and of finished attempts. Percentiles interpolate
-- (percentile_cont), so the median of 100 and 200 ms is 150 ms. Durations are rounded to the
-- microsecond and runs per minute to 6 decimals, so psql shows readable numbers.
--
-- The functions take an optional workflow: a WHERE on the view filters after every workflow
-- was computed (a plpgsql function is opaque to the planner), the argument before.

-- workflow_stats: one row per registered workflow (zeros and NULL rates when it had no run).
--
--   workflow         the workflow's name
--   runs             runs created in the window, whatever their status
--   pending .. timed_out   those runs by current status
--   finished         succeeded + failed + cancelled + timed_out
--   success_rate     succeeded / finished, 0..1 (4 decimals); NULL when none finished
--   error_rate       (failed + timed_out) / finished; a cancelled run counts as neither
--   p50_duration_ms  median duration of the finished runs, ms; NULL when none finished
--   p95_duration_ms  95th percentile of the same
--   runs_per_minute  runs / length of the window in minutes (the arrival rate)
CREATE FUNCTION qflow.workflow_stats(p_window interval, p_workflow text DEFAULT NULL)
RETURNS TABLE (workflow text, runs bigint,
               pending bigint, running bigint, succeeded bigint, failed bigint, cancelled bigint, timed_out bigint,
               finished bigint, success_rate double precision, error_rate double precision,
               p50_duration_ms double precision, p95_duration_ms double precision,
               runs_per_minute double precision)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF p_window IS NULL OR p_window <= interval '0' THEN
        RAISE EXCEPTION 'qflow: the stats window must be a positive interval, got %', coalesce(p_window::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT w.name, coalesce(s.runs, 0),
           coalesce(s.pending, 0), coalesce(s.running, 0), coalesce(s.succeeded, 0), coalesce(s.failed, 0),
           coalesce(s.cancelled, 0), coalesce(s.timed_out, 0), coalesce(s.finished, 0),
           round(s.succeeded::numeric / nullif(s.finished, 0), 4)::double precision,
           round((s.failed + s.timed_out)::numeric / nullif(s.finished, 0), 4)::double precision,
           round(s.p50::numeric, 3)::double precision, round(s.p95::numeric, 3)::double precision,
           round(coalesce(s.runs, 0) / (extract(epoch FROM p_window) / 60), 6)::double precision
      FROM (SELECT DISTINCT name FROM qflow.workflows WHERE p_workflow IS NULL OR name = p_workflow) w
      LEFT JOIN (
          SELECT r.workflow,
                 count(*) AS runs,
                 count(*) FILTER (WHERE r.status = 'pending') AS pending,
                 count(*) FILTER (WHERE r.status = 'running') AS running,
                 count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
                 count(*) FILTER (WHERE r.status = 'failed') AS failed,
                 count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
                 count(*) FILTER (WHERE r.status = 'timed_out') AS timed_out,
                 count(*) FILTER (WHERE r.finished_at IS NOT NULL) AS finished,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_ms) FILTER (WHERE r.finished_at IS NOT NULL) AS p50,
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms) FILTER (WHERE r.finished_at IS NOT NULL) AS p95
            FROM (SELECT runs.workflow, runs.status, runs.finished_at,
                         extract(epoch FROM runs.finished_at - coalesce(runs.started_at, runs.created_at))::double precision * 1000 AS duration_ms
                    FROM qflow.runs
                   WHERE runs.created_at >= now() - p_window
                     AND (p_workflow IS NULL OR runs.workflow = p_workflow)) r
           GROUP BY r.workflow) s ON s.workflow = w.name
     ORDER BY w.name;
END $$;

-- step_stats: one row per step of every workflow's current version, plus any step of an older
-- version that made attempts in the window.
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
        SELECT r.workflow, a.step, a.run_id, a.status,
               extract(epoch FROM a.finished_at - a.started_at)::double precision * 1000 AS duration_ms
          FROM qflow.runs r
          JOIN qflow.step_attempts a ON a.run_id = r.id
         WHERE r.created_at >= now() - p_window
           AND (p_workflow IS NULL OR r.workflow = p_workflow)
    ), per_step AS (
        SELECT a.workflow, a.step,
               count(DISTINCT a.run_id) AS step_runs,
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

-- The views: the last 24 hours, the window a person means by "lately". The columns are
-- spelled out (identity casts) so that sqlc, which cannot see inside a function returning a
-- table, knows them as well as psql does.
CREATE VIEW qflow.workflow_stats AS
SELECT s.workflow::text AS workflow, s.runs::bigint AS runs,
       s.pending::bigint AS pending, s.running::bigint AS running, s.succeeded::bigint AS succeeded,
       s.failed::bigint AS failed, s.cancelled::bigint AS cancelled, s.timed_out::bigint AS timed_out,
       s.finished::bigint AS finished,
       s.success_rate::double precision AS success_rate, s.error_rate::double precision AS error_rate,
       s.p50_duration_ms::double precision AS p50_duration_ms, s.p95_duration_ms::double precision AS p95_duration_ms,
       s.runs_per_minute::double precision AS runs_per_minute
  FROM qflow.workflow_stats(interval '24 hours') AS s;

CREATE VIEW qflow.step_stats AS
SELECT s.workflow::text AS workflow, s.step::text AS step, s.position::integer AS "position",
       s.step_runs::bigint AS step_runs, s.attempts::bigint AS attempts, s.succeeded::bigint AS succeeded,
       s.failed::bigint AS failed, s.timed_out::bigint AS timed_out, s.cancelled::bigint AS cancelled,
       s.failure_ratio::double precision AS failure_ratio,
       s.p50_duration_ms::double precision AS p50_duration_ms, s.p95_duration_ms::double precision AS p95_duration_ms,
       s.retries::bigint AS retries
  FROM qflow.step_stats(interval '24 hours') AS s;
