-- claim_steps (005), set-wise: one statement claims the whole batch, instead of four
-- statements per claim through claim_step. The rules are claim_step's: the step must still be
-- queued with the job's attempt (anything else is a stale job and is left out), it becomes
-- running with a lease of its timeout plus the grace period, its attempt is opened, and the
-- claim returns the run input and the dependencies' outputs. As before, a claim commits
-- without waiting for the WAL flush (see 005).
--
-- Plan stability. The batch's run ids are also given as an array: run_id = ANY is an index
-- condition on the primary key's first column, which makes the key the plan whatever the
-- statistics say. Without it, statistics that lag behind a burst of new runs made the plan
-- scan the partial index step_runs_in_flight (every queued row of the step) for each claim:
-- claims grew with the backlog, and a 20,000-run INSERT ran at a third of the steady rate.
-- finish_steps (016) looks its completions up the same way.
CREATE OR REPLACE FUNCTION qflow.claim_steps(p_claims jsonb, p_worker text)
RETURNS TABLE (run_id bigint, step text, attempt integer, workflow text, timeout_ms bigint, input jsonb, deps jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_runs bigint[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    v_runs := ARRAY(SELECT (e ->> 'run_id')::bigint FROM jsonb_array_elements(p_claims) e);
    RETURN QUERY
    WITH c AS (
        SELECT DISTINCT x.run_id, x.step, x.attempt
          FROM jsonb_to_recordset(p_claims) AS x(run_id bigint, step text, attempt integer)
    ), claimed AS (
        UPDATE qflow.step_runs sr
           SET status = 'running', started_at = now(), worker = p_worker,
               lease_expires_at = now() + s.timeout_ms * interval '1 millisecond' + qflow.lease_grace()
          FROM c, qflow.steps s
         WHERE sr.run_id = ANY (v_runs)
           AND sr.run_id = c.run_id AND sr.step = c.step AND sr.attempt = c.attempt AND sr.status = 'queued'
           AND s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
        RETURNING sr.run_id, sr.step, sr.attempt, sr.job_id, sr.workflow, sr.version, s.timeout_ms
    ), opened AS (
        INSERT INTO qflow.step_attempts (run_id, step, attempt, job_id, worker, status)
        SELECT cl.run_id, cl.step, cl.attempt, cl.job_id, p_worker, 'running' FROM claimed cl
        RETURNING step_attempts.run_id
    )
    SELECT cl.run_id, cl.step, cl.attempt, cl.workflow, cl.timeout_ms, r.input,
           coalesce((SELECT jsonb_object_agg(d.depends_on, dep.output)
                       FROM qflow.step_deps d
                       JOIN qflow.step_runs dep ON dep.run_id = cl.run_id AND dep.step = d.depends_on
                      WHERE d.workflow = cl.workflow AND d.version = cl.version AND d.step = cl.step), '{}')
      FROM claimed cl
      JOIN qflow.runs r ON r.id = cl.run_id;
END $$;
