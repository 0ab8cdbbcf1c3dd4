-- sweep_lease gives up a running attempt whose worker is dead (p_worker_dead: its liveness lock
-- is free, 0335_dead_workers.sql) or whose lease expired (its worker is alive but overran the
-- step's timeout and grace without reporting, or lost the database): the attempt fails as
-- timed out, which retries the step, the attempt's River job is cancelled so that River's
-- rescuer never runs it again, and a worker still running the handler is told to stop.
CREATE FUNCTION qflow.sweep_lease(p_run_id bigint, p_step text, p_attempt integer, p_worker_dead boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
BEGIN
    SELECT * INTO v_sr FROM qflow.step_runs
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt
       AND status = 'running' AND (p_worker_dead OR lease_expires_at < now());
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF qflow.fail_step(p_run_id, p_step, p_attempt,
                       CASE WHEN p_worker_dead
                            THEN format('worker %s died: its database session ended while it ran the step', v_sr.worker)
                            ELSE format('lease expired: worker %s did not finish the step within its timeout', v_sr.worker) END,
                       false, true) = 'stale' THEN
        RETURN false;
    END IF;
    PERFORM qflow.river_finalize_jobs(ARRAY[v_sr.job_id], 'cancelled', '{running}');
    PERFORM qflow.notify_cancel(v_sr.worker, p_run_id, p_step, p_attempt);
    RETURN true;
END $$;
