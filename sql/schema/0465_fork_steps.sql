-- fork_steps makes the step rows of a forked run (runs_start calls it for a run inserted by
-- rerun_from, 0597_rerun_from.sql): every step not downstream of p_step that succeeded or was
-- skipped in the source run keeps that outcome and output without running; p_step, everything
-- downstream of it, and any other step that did not succeed, run as in a new run. The run's
-- remaining steps are those that run; ready ones are dispatched by runs_start.
CREATE FUNCTION qflow.fork_steps(p_run_id bigint, p_source bigint, p_step text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_run    qflow.runs;
    v_reused integer;
    v_skip   record;
BEGIN
    SELECT * INTO v_run FROM qflow.runs WHERE id = p_run_id;
    -- Tells the guard that this run's steps are inserted succeeded on purpose (0490_step_runs_guard.sql).
    PERFORM set_config('qflow.forking', p_run_id::text, true);
    WITH RECURSIVE downstream(step) AS (
        SELECT p_step
        UNION
        SELECT d.step
          FROM qflow.step_deps d
          JOIN downstream ds ON d.depends_on = ds.step
         WHERE d.workflow = v_run.workflow AND d.version = v_run.version
    ), plan AS (
        SELECT s.name,
               (s.name NOT IN (SELECT step FROM downstream) AND coalesce(src.status IN ('succeeded', 'skipped'), false)) AS reused,
               src.status AS src_status, src.output AS src_output
          FROM qflow.steps s
          LEFT JOIN qflow.step_runs src ON src.run_id = p_source AND src.step = s.name
         WHERE s.workflow = v_run.workflow AND s.version = v_run.version
    ), made AS (
        INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority, output, finished_at)
        SELECT p_run_id, p.name, v_run.workflow, v_run.version,
               CASE WHEN p.reused THEN p.src_status ELSE 'waiting' END,
               CASE WHEN p.reused THEN 0
                    ELSE (SELECT count(*) FROM qflow.step_deps d JOIN plan q ON q.name = d.depends_on
                           WHERE d.workflow = v_run.workflow AND d.version = v_run.version AND d.step = p.name
                             AND NOT q.reused) END,
               v_run.priority,
               CASE WHEN p.reused THEN p.src_output END,
               CASE WHEN p.reused THEN now() END
          FROM plan p
        RETURNING step_runs.status
    )
    SELECT count(*) FILTER (WHERE status IN ('succeeded', 'skipped')) INTO v_reused FROM made;
    PERFORM set_config('qflow.forking', '', true);
    UPDATE qflow.runs SET remaining_steps = remaining_steps - v_reused WHERE id = p_run_id;

    -- The steps with nothing left to wait for start now, or are skipped (0515_step_wanted.sql).
    WITH decided AS (
        UPDATE qflow.step_runs sr
           SET status = x.status, finished_at = CASE WHEN x.status = 'skipped' THEN now() END
          FROM (SELECT w.step,
                       CASE WHEN qflow.step_wanted(w.run_id, w.workflow, w.version, w.step, s.condition) THEN 'ready'
                            ELSE 'skipped' END AS status
                  FROM qflow.step_runs w
                  JOIN qflow.steps s ON s.workflow = w.workflow AND s.version = w.version AND s.name = w.step
                 WHERE w.run_id = p_run_id AND w.status = 'waiting' AND w.remaining_deps = 0) x
         WHERE sr.run_id = p_run_id AND sr.step = x.step
        RETURNING sr.step, sr.status
    )
    SELECT array_agg(p_run_id) AS runs, array_agg(step) AS steps, array_agg(v_run.workflow) AS flows,
           array_agg(v_run.version) AS versions, array_agg(true) AS skipped
      INTO v_skip
      FROM decided
     WHERE status = 'skipped';
    IF v_skip.runs IS NOT NULL THEN
        PERFORM qflow.settle_steps(v_skip.runs, v_skip.steps, v_skip.flows, v_skip.versions, v_skip.skipped);
    END IF;
    PERFORM qflow.prepare_steps(ARRAY[p_run_id]);
END $$;
