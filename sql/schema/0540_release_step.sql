-- release_step gives a step back without counting a failure: the worker is shutting down
-- and stopped the handler. The attempt is recorded as cancelled and the step is queued again
-- for another worker.
CREATE FUNCTION qflow.release_step(p_run_id bigint, p_step text, p_attempt integer, p_reason text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    UPDATE qflow.step_runs
       SET status = 'ready', lease_expires_at = NULL, started_at = NULL, next_attempt_at = NULL,
           first_attempt = first_attempt + 1
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'running'
       AND tasks IS NULL;   -- a map step's own row runs no attempt: its elements do
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE qflow.step_attempts SET status = 'cancelled', error = p_reason, finished_at = now()
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt;
    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;
