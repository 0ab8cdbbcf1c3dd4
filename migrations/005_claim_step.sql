-- claim_step: a worker that fetched a qflow_step job takes the step.
--
-- The step must still be queued with the job's attempt in a running run; anything else means
-- the job is stale (a cancelled run, a retried step, a duplicate delivery) and nothing is
-- claimed. A claim sets a lease: the step timeout plus a grace period. A worker that dies
-- mid-step stops extending nothing; the sweeper finds the lease expired and retries the step.
-- The step's input is the run input plus the outputs of its dependencies.

CREATE FUNCTION qflow.lease_grace() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '2 seconds' $$;

CREATE FUNCTION qflow.claim_step(p_run_id bigint, p_step text, p_attempt integer, p_worker text)
RETURNS TABLE (workflow text, timeout_ms bigint, input jsonb, deps jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
    v_timeout bigint;
BEGIN
    SELECT s.timeout_ms INTO v_timeout
      FROM qflow.step_runs sr
      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
     WHERE sr.run_id = p_run_id AND sr.step = p_step;

    UPDATE qflow.step_runs sr
       SET status = 'running', started_at = now(), worker = p_worker,
           lease_expires_at = now() + v_timeout * interval '1 millisecond' + qflow.lease_grace()
     WHERE sr.run_id = p_run_id AND sr.step = p_step AND sr.attempt = p_attempt AND sr.status = 'queued'
    RETURNING sr.* INTO v_sr;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    INSERT INTO qflow.step_attempts (run_id, step, attempt, job_id, worker, status)
    VALUES (p_run_id, p_step, p_attempt, v_sr.job_id, p_worker, 'running');

    RETURN QUERY
    SELECT v_sr.workflow, v_timeout, r.input,
           coalesce((SELECT jsonb_object_agg(d.depends_on, dep.output)
                       FROM qflow.step_deps d
                       JOIN qflow.step_runs dep ON dep.run_id = p_run_id AND dep.step = d.depends_on
                      WHERE d.workflow = v_sr.workflow AND d.version = v_sr.version AND d.step = p_step), '{}')
      FROM qflow.runs r
     WHERE r.id = p_run_id;
END $$;

-- A busy worker gathers the claims of the jobs it fetched while its previous batch was in
-- flight and sends them as one call: one round trip and one commit for many steps.
-- claim_steps claims many step attempts for one worker; it returns the claimed ones (a missing
-- entry was stale). A claim is committed without waiting for the WAL flush: if Postgres loses
-- it in a crash, the step is simply still queued, its result is refused as stale and the
-- sweeper queues it again, so the flush would buy nothing but latency.
CREATE FUNCTION qflow.claim_steps(p_claims jsonb, p_worker text)
RETURNS TABLE (run_id bigint, step text, attempt integer, workflow text, timeout_ms bigint, input jsonb, deps jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_claim record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR v_claim IN
        SELECT c.run_id, c.step, c.attempt
          FROM jsonb_to_recordset(p_claims) AS c(run_id bigint, step text, attempt integer)
         ORDER BY c.run_id, c.step
    LOOP
        RETURN QUERY
        SELECT v_claim.run_id, v_claim.step, v_claim.attempt, cs.workflow, cs.timeout_ms, cs.input, cs.deps
          FROM qflow.claim_step(v_claim.run_id, v_claim.step, v_claim.attempt, p_worker) cs;
    END LOOP;
END $$;
