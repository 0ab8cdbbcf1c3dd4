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

-- The view: the last 24 hours, the window a person means by "lately". The columns are
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
