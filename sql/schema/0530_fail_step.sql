-- fail_step ends a running attempt with an error (finish_steps calls it for each failure a
-- worker reports, the sweep for each expired lease). Returns what happened: 'retry' (another
-- attempt is scheduled after the backoff of 0350_retry_delay.sql), 'skipped' (the step allows
-- it; successors go on as after a success), 'failed' (the run failed and its other work was
-- cancelled) or 'stale' (that attempt was not running: nothing changed). An error marked
-- permanent is not retried; the retry budget counts from first_attempt.
--
-- An element of a map step retries as a step does, with the step's settings. One out of
-- retries fails its map step, and so the run (whose finish_run stops the other elements), or,
-- under on_failure: skip, skips the map step: its other elements are stopped and its successors
-- go on as after a skip.
CREATE FUNCTION qflow.fail_step(p_run_id bigint, p_step text, p_attempt integer, p_error text,
                                p_permanent boolean DEFAULT false, p_timed_out boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
    v_s  qflow.steps;
    v_failures integer;
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;

    SELECT * INTO v_sr FROM qflow.step_runs
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'running'
       AND tasks IS NULL;   -- a map step's own row runs no attempt: its elements do
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;
    SELECT * INTO v_s FROM qflow.steps WHERE workflow = v_sr.workflow AND version = v_sr.version AND name = v_sr.def_step;

    UPDATE qflow.step_attempts
       SET status = CASE WHEN p_timed_out THEN 'timed_out' ELSE 'failed' END, error = p_error, finished_at = now()
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt;

    v_failures := p_attempt - v_sr.first_attempt + 1;
    IF NOT p_permanent AND v_failures < v_s.max_attempts THEN
        UPDATE qflow.step_runs
           SET status = 'ready', error = p_error, lease_expires_at = NULL, started_at = NULL,
               next_attempt_at = now() + qflow.retry_delay(v_s.retry_base_ms, v_s.retry_max_ms, v_failures)
         WHERE run_id = p_run_id AND step = p_step;
        -- Under a concurrency limit the retry competes for a slot again like any ready row.
        PERFORM qflow.dispatch(ARRAY[p_run_id]);
        RETURN 'retry';
    END IF;

    IF v_sr.task IS NOT NULL THEN
        -- The element fails; its map step is what fails or is skipped.
        UPDATE qflow.step_runs
           SET status = 'failed', error = p_error, lease_expires_at = NULL, finished_at = now()
         WHERE run_id = p_run_id AND step = p_step;
        p_step := v_sr.def_step;
        p_error := format('element %s failed%s: %s', v_sr.task,
                          CASE WHEN p_permanent THEN ' permanently' ELSE format(' after %s attempt(s)', v_failures) END, p_error);
    END IF;

    IF v_s.on_failure = 'skip' THEN
        UPDATE qflow.step_runs
           SET status = 'skipped', error = p_error, lease_expires_at = NULL, finished_at = now()
         WHERE run_id = p_run_id AND step = p_step;
        IF v_sr.task IS NOT NULL THEN
            PERFORM qflow.stop_steps(p_run_id, p_step, format('map step %s skipped', p_step));
        END IF;
        PERFORM qflow.settle_steps(ARRAY[p_run_id], ARRAY[p_step], ARRAY[v_sr.workflow], ARRAY[v_sr.version], ARRAY[true]);
        PERFORM qflow.dispatch(ARRAY[p_run_id]);
        RETURN 'skipped';
    END IF;

    UPDATE qflow.step_runs
       SET status = 'failed', error = p_error, lease_expires_at = NULL, finished_at = now()
     WHERE run_id = p_run_id AND step = p_step;
    PERFORM qflow.finish_run(p_run_id, 'failed',
        CASE WHEN v_sr.task IS NOT NULL THEN format('step %s failed: %s', p_step, p_error)
             ELSE format('step %s failed%s: %s', p_step,
                         CASE WHEN p_permanent THEN ' permanently' ELSE format(' after %s attempt(s)', v_failures) END, p_error)
        END);
    RETURN 'failed';
END $$;
