-- Conditions and skips (this file; 0520_settle_steps.sql; 0460_runs_start.sql). A step whose
-- dependencies have all settled runs when at least one of them succeeded (or it has none) and
-- its condition, if any, holds: the document {"input": <run input>, <dependency>: <its output>,
-- ...} contains it (jsonb @>, as pgflow's "if"). Otherwise it is skipped without running, and
-- its own successors are settled in turn, so a skip cascades down a chain and a join after two
-- branches runs when one of them ran. A skipped dependency gives the step's input a null.
--
-- step_wanted says whether a step whose dependencies have all settled should run.
CREATE FUNCTION qflow.step_wanted(p_run_id bigint, p_workflow text, p_version integer, p_step text, p_condition jsonb)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_deps      integer;
    v_succeeded boolean;
    v_context   jsonb;
BEGIN
    SELECT count(*), coalesce(bool_or(dep.status = 'succeeded'), false),
           coalesce(jsonb_object_agg(d.depends_on, dep.output) FILTER (WHERE d.depends_on IS NOT NULL), '{}')
      INTO v_deps, v_succeeded, v_context
      FROM qflow.step_deps d
      JOIN qflow.step_runs dep ON dep.run_id = p_run_id AND dep.step = d.depends_on
     WHERE d.workflow = p_workflow AND d.version = p_version AND d.step = p_step;
    IF v_deps > 0 AND NOT v_succeeded THEN
        RETURN false;
    END IF;
    IF p_condition IS NULL THEN
        RETURN true;
    END IF;
    SELECT v_context || jsonb_build_object('input', r.input) INTO v_context FROM qflow.runs r WHERE r.id = p_run_id;
    RETURN v_context @> p_condition;
END $$;
