-- settle_steps counts steps that reached succeeded or skipped (given as parallel arrays, each
-- run already locked by the caller): each successor loses one pending dependency per settled
-- dependency and becomes ready at zero; each run loses one remaining step per settled step;
-- slots freed under concurrency limits are handed on; and a run with no step left succeeds,
-- its output being its leaf steps' outputs (finish_run's other work, stopping live steps and
-- jobs, has nothing to do for such a run). The steps it made ready are not dispatched here:
-- the caller does that, after taking one itself where it may (eager dispatch,
-- 0550_finish_steps.sql). Returns the runs with steps made ready and how many were.
CREATE FUNCTION qflow.settle_steps(p_run_ids bigint[], p_steps text[], p_workflows text[], p_versions integer[],
                                   OUT ready_runs bigint[], OUT ready_steps integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_finished bigint[];   -- runs whose last step settled
    v_limited  boolean;    -- a settled step has a concurrency limit
    v_group    record;
BEGIN
    WITH settled AS (
        SELECT * FROM unnest(p_run_ids, p_steps, p_workflows, p_versions) AS d(run_id, step, workflow, version)
    ), successors AS (
        UPDATE qflow.step_runs succ
           SET remaining_deps = succ.remaining_deps - x.n,
               status = CASE WHEN succ.remaining_deps = x.n THEN 'ready' ELSE 'waiting' END
          FROM (SELECT d.run_id, dep.step, count(*)::integer AS n
                  FROM settled d
                  JOIN qflow.step_deps dep ON dep.workflow = d.workflow AND dep.version = d.version AND dep.depends_on = d.step
                 GROUP BY d.run_id, dep.step) x
         WHERE succ.run_id = x.run_id AND succ.step = x.step AND succ.status = 'waiting'
        RETURNING succ.run_id, succ.status
    ), counted AS (
        UPDATE qflow.runs r
           SET remaining_steps = r.remaining_steps - x.n
          FROM (SELECT d.run_id, count(*)::integer AS n FROM settled d GROUP BY d.run_id) x
         WHERE r.id = x.run_id
        RETURNING r.id, r.remaining_steps
    )
    SELECT (SELECT array_agg(c.id) FROM counted c WHERE c.remaining_steps = 0),
           (SELECT array_agg(DISTINCT s.run_id) FROM successors s WHERE s.status = 'ready'),
           (SELECT count(*) FROM successors s WHERE s.status = 'ready'),
           (SELECT coalesce(bool_or(st.max_concurrency IS NOT NULL), false)
              FROM settled d
              JOIN qflow.steps st ON st.workflow = d.workflow AND st.version = d.version AND st.name = d.step)
      INTO v_finished, ready_runs, ready_steps, v_limited;

    -- Slots freed under concurrency limits, in (workflow, position) order like every taker of
    -- those locks (0420_dispatch.sql).
    IF v_limited THEN
        FOR v_group IN
            SELECT DISTINCT d.workflow, s.position, d.step
              FROM unnest(p_steps, p_workflows, p_versions) AS d(step, workflow, version)
              JOIN qflow.steps s ON s.workflow = d.workflow AND s.version = d.version AND s.name = d.step
             WHERE s.max_concurrency IS NOT NULL
             ORDER BY 1, 2
        LOOP
            PERFORM qflow.dispatch_limited(v_group.workflow, v_group.step);
        END LOOP;
    END IF;

    IF v_finished IS NOT NULL THEN
        UPDATE qflow.runs r
           SET status = 'succeeded', finished_at = now(), error = NULL, output = qflow.run_output(r.id)
         WHERE r.id = ANY (v_finished) AND r.status = 'running';
    END IF;
END $$;
