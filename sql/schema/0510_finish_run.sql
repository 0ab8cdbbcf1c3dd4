-- finish_run moves a live run to a terminal status and stops its remaining work: steps not
-- yet finished are cancelled, their River jobs that have not started are cancelled, and slots
-- they held under a concurrency limit go to other runs. A succeeded workflow-mode run's output
-- is its leaf steps' outputs (0345_run_output.sql); a legacy run's was set by its job.
--
-- Lock order, everywhere: the run row first, then its step rows. Every transition of a run's
-- steps serialises on the run row, which keeps the counters exact and deadlocks away. The step
-- rows are stopped before the attempts: claim_steps does not lock the run, and a claim holding
-- its step row while the run finishes commits its attempt after an UPDATE of attempts taken
-- first would have looked (which left that attempt running in a finished run forever). Updating
-- the step rows first waits for such a claim; the attempts' UPDATE, a later statement, then
-- sees its attempt.
CREATE FUNCTION qflow.finish_run(p_run_id bigint, p_status text, p_error text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_group    record;
    v_jobs     bigint[];
    v_workers  text[];
    v_steps    text[];
    v_attempts integer[];
    v_legacy   record;
BEGIN
    UPDATE qflow.runs r
       SET status = p_status, finished_at = now(), error = p_error,
           remaining_steps = CASE WHEN p_status = 'succeeded' THEN 0 ELSE r.remaining_steps END,
           output = CASE WHEN p_status <> 'succeeded' THEN NULL
                         WHEN r.mode = 'legacy' THEN r.output
                         ELSE qflow.run_output(r.id)
                    END
     WHERE r.id = p_run_id AND r.status IN ('pending', 'running');
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    WITH stopped AS (
        UPDATE qflow.step_runs
           SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL
         WHERE run_id = p_run_id AND status IN ('waiting', 'ready', 'queued', 'running')
        RETURNING job_id, worker, step, attempt, started_at
    )
    SELECT array_agg(job_id) FILTER (WHERE job_id IS NOT NULL),
           array_agg(worker) FILTER (WHERE started_at IS NOT NULL),
           array_agg(step) FILTER (WHERE started_at IS NOT NULL),
           array_agg(attempt) FILTER (WHERE started_at IS NOT NULL)
      INTO v_jobs, v_workers, v_steps, v_attempts
      FROM stopped;
    -- A running job is left to its worker, which finds its result stale; the handler is told
    -- to stop now rather than at its timeout.
    PERFORM qflow.river_finalize_jobs(v_jobs, 'cancelled', '{available,scheduled,retryable,pending}');
    PERFORM qflow.notify_cancel(x.worker, p_run_id, x.step, x.attempt)
       FROM unnest(v_workers, v_steps, v_attempts) AS x(worker, step, attempt);

    UPDATE qflow.step_attempts
       SET status = 'cancelled', finished_at = now(), error = coalesce(error, format('run %s', p_status))
     WHERE run_id = p_run_id AND status = 'running';

    -- Legacy runs have one job and no step rows; a job of theirs still running is told to stop
    -- (unless it is the job that succeeded the run).
    IF EXISTS (SELECT 1 FROM qflow.runs r WHERE r.id = p_run_id AND r.mode = 'legacy') THEN
        PERFORM qflow.river_finalize_jobs(
            ARRAY(SELECT j.id FROM river.river_job j
                   WHERE j.kind = 'qflow_legacy' AND j.args @> jsonb_build_object('run_id', p_run_id)),
            'cancelled', '{available,scheduled,retryable}');
        IF p_status <> 'succeeded' THEN
            FOR v_legacy IN
                SELECT j.attempted_by[cardinality(j.attempted_by)] AS worker, (j.args ->> 'attempt')::integer AS attempt
                  FROM river.river_job j
                 WHERE j.kind = 'qflow_legacy' AND j.state = 'running' AND j.args @> jsonb_build_object('run_id', p_run_id)
            LOOP
                PERFORM qflow.notify_cancel(v_legacy.worker, p_run_id, NULL, v_legacy.attempt);
            END LOOP;
        END IF;
    END IF;

    -- A succeeded run freed nothing here: settle_steps already handed its last slot on.
    FOR v_group IN
        SELECT sr.workflow, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.run_id = p_run_id AND s.max_concurrency IS NOT NULL AND p_status <> 'succeeded'
         ORDER BY s.position
    LOOP
        PERFORM qflow.dispatch_limited(v_group.workflow, v_group.step);
    END LOOP;
    RETURN true;
END $$;
