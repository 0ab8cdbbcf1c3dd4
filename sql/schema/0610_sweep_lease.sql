-- sweep_lease fails an attempt whose lease expired (its worker died or lost the database) as
-- timed out, which retries the step, and cancels the attempt's River job so that River's
-- rescuer never runs it again.
CREATE FUNCTION qflow.sweep_lease(p_run_id bigint, p_step text, p_attempt integer)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
BEGIN
    SELECT * INTO v_sr FROM qflow.step_runs
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt
       AND status = 'running' AND lease_expires_at < now();
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF qflow.fail_step(p_run_id, p_step, p_attempt,
                       format('lease expired: worker %s stopped without finishing the step', v_sr.worker),
                       false, true) = 'stale' THEN
        RETURN false;
    END IF;
    PERFORM qflow.river_finalize_jobs(ARRAY[v_sr.job_id], 'cancelled', '{running}');
    RETURN true;
END $$;
