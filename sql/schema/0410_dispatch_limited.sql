-- dispatch_limited hands free slots of one concurrency-limited step to its ready rows,
-- highest priority and oldest run first, across all runs. It counts the step's queued and
-- running rows across every run and worker under one lock per (workflow, step), so the limit
-- holds fleet-wide. Takers of these locks take them in (workflow, topological position) order
-- (0420_dispatch.sql). A map step's elements count against its limit, each as one step.
CREATE FUNCTION qflow.dispatch_limited(p_workflow text, p_step text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_limit integer;
    v_busy  integer;
    v_runs  bigint[];
    v_steps text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.limit:' || p_workflow || '.' || p_step, 0));

    -- The current version's limit governs every version's rows of the step.
    SELECT max_concurrency INTO v_limit
      FROM qflow.steps WHERE workflow = p_workflow AND name = p_step
     ORDER BY version DESC LIMIT 1;

    -- A separate statement after the lock: it sees everything committed by the lock's last holder.
    SELECT count(*) INTO v_busy
      FROM qflow.step_runs
     WHERE workflow = p_workflow AND def_step = p_step AND status IN ('queued', 'running') AND tasks IS NULL;

    IF v_limit IS NOT NULL AND v_busy >= v_limit THEN
        RETURN;
    END IF;

    SELECT array_agg(run_id), array_agg(step) INTO v_runs, v_steps
      FROM (SELECT sr.run_id, sr.step
              FROM qflow.step_runs sr
             WHERE sr.workflow = p_workflow AND sr.def_step = p_step AND sr.status = 'ready'
             ORDER BY sr.priority, sr.run_id, sr.task
             LIMIT CASE WHEN v_limit IS NULL THEN NULL ELSE v_limit - v_busy END
               FOR UPDATE SKIP LOCKED) free;

    PERFORM qflow.enqueue(v_runs, v_steps);
END $$;
