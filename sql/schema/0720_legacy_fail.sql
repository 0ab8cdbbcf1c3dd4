-- legacy_fail retries the whole chain with backoff, or fails the run. Returns 'retry',
-- 'failed' or 'stale'.
CREATE FUNCTION qflow.legacy_fail(p_run_id bigint, p_attempt integer, p_error text, p_permanent boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_run qflow.runs;
    v_max integer;
    v_base bigint;
    v_cap bigint;
BEGIN
    SELECT * INTO v_run FROM qflow.runs
     WHERE id = p_run_id AND mode = 'legacy' AND status = 'running' AND attempt = p_attempt
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;
    SELECT max(max_attempts), min(retry_base_ms), max(retry_max_ms) INTO v_max, v_base, v_cap
      FROM qflow.steps WHERE workflow = v_run.workflow AND version = v_run.version;

    IF NOT p_permanent AND p_attempt < v_max THEN
        UPDATE qflow.runs SET status = 'pending', error = p_error WHERE id = p_run_id;
        PERFORM qflow.enqueue_legacy(ARRAY[p_run_id], ARRAY[p_attempt + 1], ARRAY[v_run.priority],
                                     ARRAY[now() + qflow.retry_delay(v_base, v_cap, p_attempt)]);
        RETURN 'retry';
    END IF;
    PERFORM qflow.finish_run(p_run_id, 'failed',
        format('legacy run failed%s: %s',
               CASE WHEN p_permanent THEN ' permanently' ELSE format(' after %s attempt(s)', p_attempt) END, p_error));
    RETURN 'failed';
END $$;
