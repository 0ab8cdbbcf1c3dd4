-- autoscaling: per worker class, the work waiting and running and how many worker processes
-- it wants, for an autoscaler. KEDA's PostgreSQL scaler reads one number from one query:
--
--   SELECT desired_workers FROM qflow.autoscaling(1, 'gpu');   -- GPU workers running 1 step each
--   SELECT * FROM qflow.autoscaling(10);                        -- every class, 10 steps per worker
--
--   p_max_workers    steps one worker process runs at once: its --max-workers (River's
--                    MaxWorkers). The caller says it, because the scaler must know it when no
--                    worker of the class is alive to tell.
--   p_class          one class (then exactly one row, zeros for a class nothing names), or NULL
--                    for every class some step names (and cpu, where legacy runs run)
--
--   worker_class     the class (a River queue)
--   backlog          steps waiting for a worker of the class: queued and due (their retry
--                    backoff, if any, has passed), plus steps ready but held back by their
--                    step's max_concurrency, plus legacy runs not yet picked up (class cpu)
--   running          steps running, plus legacy runs running (cpu)
--   wanted           the slots the class could fill now: running + queued and due + the held
--                    back steps that their step's max_concurrency would let run (so 50 ready
--                    training steps of a step limited to 1 want 1 slot, not 50)
--   desired_workers  ceil(wanted / p_max_workers): 0 when there is nothing to do
--
-- Steps waiting for their dependencies, and retries still in backoff, want no worker yet: the
-- number rises when they become due. It reads only live rows (the partial indexes of
-- step_runs and the live runs), so its cost follows the work in flight, not the history.
CREATE FUNCTION qflow.autoscaling(p_max_workers integer DEFAULT 10, p_class text DEFAULT NULL)
RETURNS TABLE (worker_class text, backlog bigint, running bigint, wanted bigint, desired_workers integer)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF p_max_workers IS NULL OR p_max_workers < 1 THEN
        RAISE EXCEPTION 'qflow: max workers per process must be at least 1, got %', coalesce(p_max_workers::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH live AS (
        -- live step rows by step: their class is their version's, their limit the current
        -- version's (as dispatch_limited applies it)
        SELECT s.worker_class AS class, sr.workflow, sr.def_step AS step,
               count(*) FILTER (WHERE sr.status = 'ready') AS ready,
               count(*) FILTER (WHERE sr.status = 'queued' AND (sr.next_attempt_at IS NULL OR sr.next_attempt_at <= now())) AS queued,
               count(*) FILTER (WHERE sr.status = 'running') AS running
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
         WHERE sr.status IN ('ready', 'queued', 'running') AND sr.tasks IS NULL   -- a map step counts as its elements
         GROUP BY s.worker_class, sr.workflow, sr.def_step
    ), per_step AS (
        SELECT l.class, l.ready + l.queued AS backlog, l.running,
               l.running + l.queued + CASE WHEN lim.max_concurrency IS NULL THEN l.ready
                                           ELSE greatest(0, least(l.ready, lim.max_concurrency - l.running - l.queued)) END AS wanted
          FROM live l
          LEFT JOIN LATERAL (SELECT s.max_concurrency FROM qflow.steps s
                              WHERE s.workflow = l.workflow AND s.name = l.step
                              ORDER BY s.version DESC LIMIT 1) lim ON true
        UNION ALL
        -- a legacy run is one job of the cpu queue running every step in turn: one slot
        SELECT 'cpu', count(*) FILTER (WHERE r.status = 'pending'), count(*) FILTER (WHERE r.status = 'running'), count(*)
          FROM qflow.runs r
         WHERE r.mode = 'legacy' AND r.status IN ('pending', 'running')
    ), classes AS (
        SELECT DISTINCT s.worker_class AS class FROM qflow.steps s WHERE p_class IS NULL
        UNION SELECT 'cpu' WHERE p_class IS NULL
        UNION SELECT p_class WHERE p_class IS NOT NULL
    )
    SELECT c.class, coalesce(sum(p.backlog), 0)::bigint, coalesce(sum(p.running), 0)::bigint,
           coalesce(sum(p.wanted), 0)::bigint,
           ceil(coalesce(sum(p.wanted), 0)::numeric / p_max_workers)::integer
      FROM classes c
      LEFT JOIN per_step p ON p.class = c.class
     GROUP BY c.class
     ORDER BY c.class;
END $$;
