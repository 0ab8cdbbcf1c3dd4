-- dispatch queues every ready step of the given runs: steps without a concurrency limit at
-- once, limited ones through dispatch_limited. The ready status is a variable, so the rows are
-- found by the runs' keys, never by reading the partial index of all ready rows (see
-- 0400_enqueue.sql).
CREATE FUNCTION qflow.dispatch(p_run_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_runs  bigint[];
    v_steps text[];
    v_group record;
    v_ready constant text := 'ready';
BEGIN
    SELECT array_agg(sr.run_id), array_agg(sr.step) INTO v_runs, v_steps
      FROM qflow.step_runs sr
      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
     WHERE sr.run_id = ANY (p_run_ids) AND sr.status = v_ready AND s.max_concurrency IS NULL;
    PERFORM qflow.enqueue(v_runs, v_steps);

    -- Limit locks are always taken in (workflow, topological position) order, here and in
    -- finish_run and settle_steps, so two transactions can never wait on each other's.
    FOR v_group IN
        SELECT DISTINCT sr.workflow, s.position, sr.def_step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
         WHERE sr.run_id = ANY (p_run_ids) AND sr.status = v_ready AND s.max_concurrency IS NOT NULL
         ORDER BY 1, 2
    LOOP
        PERFORM qflow.dispatch_limited(v_group.workflow, v_group.def_step);
    END LOOP;
END $$;
