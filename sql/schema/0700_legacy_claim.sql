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
