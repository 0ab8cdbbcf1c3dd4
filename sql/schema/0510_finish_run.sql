-- finish_run moves a live run to a terminal status and stops its remaining work: steps not
-- yet finished are cancelled, their River jobs that have not started are cancelled, and slots
-- they held under a concurrency limit go to other runs. A succeeded workflow-mode run's output
-- is its leaf steps' outputs (0345_run_output.sql); a legacy run's was set by its job.
--
-- Lock order, everywhere: the run row first, then its step rows. Every transition of a run's
-- steps serialises on the run row, which keeps the counters exact and deadlocks away. How live
-- steps are stopped is 0344_stop_steps.sql.
CREATE FUNCTION qflow.finish_run(p_run_id bigint, p_status text, p_error text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_group    record;
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

    PERFORM qflow.stop_steps(p_run_id, NULL, format('run %s', p_status));

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
        SELECT DISTINCT sr.workflow, s.position, sr.def_step AS step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
         WHERE sr.run_id = p_run_id AND s.max_concurrency IS NOT NULL AND p_status <> 'succeeded'
         ORDER BY s.position
    LOOP
        PERFORM qflow.dispatch_limited(v_group.workflow, v_group.step);
    END LOOP;
    RETURN true;
END $$;
