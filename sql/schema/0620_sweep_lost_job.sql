-- sweep_lost_job queues a step again whose job can no longer run it (see sweep). No handler ran
-- for that dispatch, so it does not count against the step's retry budget (first_attempt moves
-- on with the attempt number, as for a release).
CREATE FUNCTION qflow.sweep_lost_job(p_run_id bigint, p_step text, p_attempt integer, p_job_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    UPDATE qflow.step_runs SET status = 'ready', first_attempt = first_attempt + 1
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'queued';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM qflow.river_finalize_jobs(ARRAY[p_job_id], 'cancelled', '{running}');
    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;
