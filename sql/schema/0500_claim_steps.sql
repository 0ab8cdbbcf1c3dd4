-- claim_steps: a worker that fetched qflow_step jobs takes their steps, a batch at a time.
--
-- A busy worker gathers the claims of the jobs it fetched while its previous batch was in
-- flight and sends them as one call: one round trip, one statement and one commit for many
-- steps. Each claim must find its step still queued with the job's attempt; anything else
-- means the job is stale (a cancelled run, a retried step, a duplicate delivery) and the claim
-- is left out of the result. A claim this worker already made (it sends the call again because
-- the reply was lost) gets the same answer, so any retry of the call is safe and no step is left
-- running with nobody running it. A claimed step becomes running with a lease
-- (0330_lease_expiry.sql), its attempt is opened, and the claim returns the run input and the
-- dependencies' outputs (0340_step_input.sql) -- and, for an element of a map step, the element. A worker that dies mid-step stops nothing; the
-- sweep finds the lease expired and retries the step.
--
-- A claim commits without waiting for the WAL flush: if Postgres loses it in a crash, the step
-- is simply still queued, its result is refused as stale and the sweep queues it again, so the
-- flush would buy nothing but latency.
--
-- Plan stability. The batch's run ids are also given as an array: run_id = ANY is an index
-- condition on the primary key's first column, and the runs are read with it too. Statistics
-- that lag behind a burst of new runs still made the plan AND the primary key with the partial
-- index step_runs_in_flight (every queued row of every step, 12,000 entries read per claim under
-- make bench's load) and scan the runs table for the run inputs: claims grew with the backlog
-- and the history. So the status the claim looks for is a variable (v_queued): a partial index
-- can serve only a predicate the planner can prove from constants, and a generic plan's
-- parameter proves nothing, so the key is the only index left. finish_steps looks its
-- completions up the same way. And both keep one generic plan per
-- connection: with the default plan cache mode each autovacuum ANALYZE of these small, busy
-- tables invalidated their plans and bought the next five calls on every connection a full
-- planning of each statement (idle hop p99 6-8 ms against 4.5-5.5 ms with generic plans).
CREATE FUNCTION qflow.claim_steps(p_claims jsonb, p_worker text)
RETURNS TABLE (run_id bigint, step text, attempt integer, workflow text, timeout_ms bigint, input jsonb, deps jsonb,
               item jsonb)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_runs   bigint[];
    v_queued constant text := 'queued';    -- a parameter, not a constant: see above
    v_running constant text := 'running';
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
               lease_expires_at = qflow.lease_expiry(now(), s.timeout_ms)
          FROM c, qflow.steps s
         WHERE sr.run_id = ANY (v_runs)
           AND sr.run_id = c.run_id AND sr.step = c.step AND sr.attempt = c.attempt AND sr.status = v_queued
           AND s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
        RETURNING sr.run_id, sr.step, sr.attempt, sr.job_id, sr.workflow, sr.version, s.timeout_ms, sr.def_step,
                  sr.item, CASE WHEN sr.task IS NOT NULL THEN s.map_over END AS mapped
    ), opened AS (
        INSERT INTO qflow.step_attempts (run_id, step, attempt, job_id, worker, status)
        SELECT cl.run_id, cl.step, cl.attempt, cl.job_id, p_worker, 'running' FROM claimed cl
        RETURNING step_attempts.run_id
    ), again AS (
        -- Claimed by an earlier call of this worker (this statement's UPDATE is invisible here).
        SELECT sr.run_id, sr.step, sr.attempt, sr.workflow, sr.version, s.timeout_ms, sr.def_step,
               sr.item, CASE WHEN sr.task IS NOT NULL THEN s.map_over END AS mapped
          FROM c
          JOIN qflow.step_runs sr ON sr.run_id = c.run_id AND sr.step = c.step AND sr.attempt = c.attempt
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
         WHERE sr.run_id = ANY (v_runs) AND sr.status = v_running AND sr.worker = p_worker
    )
    SELECT cl.run_id, cl.step, cl.attempt, cl.workflow, cl.timeout_ms, r.input, si.deps, cl.item
      FROM (SELECT k.run_id, k.step, k.attempt, k.workflow, k.version, k.timeout_ms, k.def_step, k.item, k.mapped
              FROM claimed k
            UNION ALL
            SELECT g.run_id, g.step, g.attempt, g.workflow, g.version, g.timeout_ms, g.def_step, g.item, g.mapped
              FROM again g) cl
      JOIN qflow.runs r ON r.id = cl.run_id AND r.id = ANY (v_runs)
     CROSS JOIN LATERAL qflow.step_input(cl.run_id, cl.workflow, cl.version, cl.def_step, cl.mapped) si;
END $$;
