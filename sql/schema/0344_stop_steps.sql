-- stop_steps cancels the live step rows of a run (all of them, or only the live elements of
-- the map step p_map_step) and what runs them: their River jobs that have not started are
-- cancelled, a handler already running is told to stop now rather than at its timeout
-- (0337_notify_cancel.sql; its late result is found stale), and their open attempts are closed
-- as cancelled with p_reason. The caller holds the run's lock.
--
-- The step rows are stopped before the attempts: claim_steps does not lock the run, and a claim
-- holding its step row commits its attempt after an UPDATE of attempts taken first would have
-- looked (which left that attempt running in a finished run forever). Updating the step rows
-- first waits for such a claim; the attempts' UPDATE, a later statement, then sees its attempt.
CREATE FUNCTION qflow.stop_steps(p_run_id bigint, p_map_step text, p_reason text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_jobs     bigint[];
    v_workers  text[];
    v_steps    text[];
    v_attempts integer[];
BEGIN
    WITH stopped AS (
        UPDATE qflow.step_runs
           SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL
         WHERE run_id = p_run_id AND status IN ('waiting', 'ready', 'queued', 'running')
           AND (p_map_step IS NULL OR (def_step = p_map_step AND task IS NOT NULL))
        RETURNING job_id, worker, step, attempt, started_at
    )
    SELECT array_agg(job_id) FILTER (WHERE job_id IS NOT NULL),
           array_agg(worker) FILTER (WHERE started_at IS NOT NULL AND worker IS NOT NULL),
           array_agg(step) FILTER (WHERE started_at IS NOT NULL AND worker IS NOT NULL),
           array_agg(attempt) FILTER (WHERE started_at IS NOT NULL AND worker IS NOT NULL)
      INTO v_jobs, v_workers, v_steps, v_attempts
      FROM stopped;
    PERFORM qflow.river_finalize_jobs(v_jobs, 'cancelled', '{available,scheduled,retryable,pending}');
    PERFORM qflow.notify_cancel(x.worker, p_run_id, x.step, x.attempt)
       FROM unnest(v_workers, v_steps, v_attempts) AS x(worker, step, attempt);

    UPDATE qflow.step_attempts a
       SET status = 'cancelled', finished_at = now(), error = coalesce(a.error, p_reason)
     WHERE a.run_id = p_run_id AND a.status = 'running'
       AND (p_map_step IS NULL OR (split_part(a.step, '[', 1) = p_map_step AND strpos(a.step, '[') > 0));
END $$;
