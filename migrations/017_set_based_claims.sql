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

-- The two calls of every hop keep one generic plan per connection. With the default plan
-- cache mode each autovacuum ANALYZE of these small, busy tables invalidated their plans and
-- bought the next five calls on every connection a full planning of each statement: the
-- slowest idle hops (p99 6-8 ms against 4.5-5.5 ms with generic plans, same machine). Their
-- lookups are by primary key with run_id = ANY (see above), so a generic plan loses nothing.
ALTER FUNCTION qflow.finish_steps SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION qflow.claim_steps SET plan_cache_mode = force_generic_plan;

-- secure_procedures (015) checks for the fixed search_path among a definer's settings, not
-- for it alone, so settings like the one above survive every migration untouched.
CREATE OR REPLACE FUNCTION qflow.secure_procedures()
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_proc record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.secure_procedures', 0));
    FOR v_proc IN
        SELECT p.oid::regprocedure AS signature
          FROM pg_proc p
         WHERE p.pronamespace = 'qflow'::regnamespace
           AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
    LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', v_proc.signature);
    END LOOP;
    FOR v_proc IN
        SELECT p.oid::regprocedure AS signature
          FROM qflow.procedure_access pa
          JOIN pg_proc p ON p.proname = pa.name AND p.pronamespace = 'qflow'::regnamespace
         WHERE pa.definer
           AND NOT (p.prosecdef AND 'search_path=pg_catalog, qflow, pg_temp' = ANY (coalesce(p.proconfig, '{}')))
    LOOP
        EXECUTE format('ALTER ROUTINE %s SECURITY DEFINER SET search_path = pg_catalog, qflow, pg_temp', v_proc.signature);
    END LOOP;
END $$;
