-- Legacy ("Broadway") mode: one qflow_legacy job runs every step of a run in one process, in
-- dependency order, keeping nothing per step. A failure retries the whole chain. It is the
-- rollback path and the baseline that benchmarks compare against. Its retry budget is the
-- largest max_attempts of the workflow's steps, its backoff the smallest base delay.

-- legacy_claim starts a legacy run; NULL when the job is stale (run finished, or another attempt).
CREATE FUNCTION qflow.legacy_claim(p_run_id bigint, p_attempt integer)
RETURNS TABLE (workflow text, version integer, timeout_ms bigint, input jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE qflow.runs r
       SET status = 'running', started_at = coalesce(r.started_at, now()), attempt = p_attempt
      FROM qflow.workflows w
     WHERE r.id = p_run_id AND r.mode = 'legacy' AND r.status = 'pending' AND r.attempt = p_attempt - 1
       AND w.name = r.workflow AND w.version = r.version
    RETURNING r.workflow, r.version, w.timeout_ms, r.input;
END $$;

CREATE FUNCTION qflow.legacy_complete(p_run_id bigint, p_attempt integer, p_output jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE qflow.runs SET output = p_output
     WHERE id = p_run_id AND mode = 'legacy' AND status = 'running' AND attempt = p_attempt;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN qflow.finish_run(p_run_id, 'succeeded', NULL);
END $$;

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
        INSERT INTO river.river_job (args, kind, max_attempts, queue, priority, scheduled_at)
        VALUES (jsonb_build_object('run_id', p_run_id, 'attempt', p_attempt + 1), 'qflow_legacy', 1, 'cpu',
                v_run.priority, now() + qflow.retry_delay(v_base, v_cap, p_attempt));
        PERFORM qflow.notify_queues('{cpu}');
        RETURN 'retry';
    END IF;
    PERFORM qflow.finish_run(p_run_id, 'failed',
        format('legacy run failed%s: %s',
               CASE WHEN p_permanent THEN ' permanently' ELSE format(' after %s attempt(s)', p_attempt) END, p_error));
    RETURN 'failed';
END $$;

-- legacy_steps lists a workflow version's steps in the order a legacy job runs them.
CREATE FUNCTION qflow.legacy_steps(p_workflow text, p_version integer)
RETURNS TABLE (name text, depends_on text[], timeout_ms bigint)
LANGUAGE sql STABLE AS $$
    SELECT s.name,
           coalesce((SELECT array_agg(d.depends_on ORDER BY d.depends_on) FROM qflow.step_deps d
                      WHERE d.workflow = s.workflow AND d.version = s.version AND d.step = s.name), '{}'),
           s.timeout_ms
      FROM qflow.steps s
     WHERE s.workflow = p_workflow AND s.version = p_version
     ORDER BY s.position;
$$;
