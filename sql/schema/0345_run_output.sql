-- run_output: the output of a succeeded workflow-mode run, {leaf step name: its output} over
-- the leaf steps that succeeded (a skipped leaf is left out). plpgsql for its cached plan, as
-- step_input.
CREATE FUNCTION qflow.run_output(p_run_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(sr.step, sr.output), '{}')
              FROM qflow.step_runs sr
              JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
             WHERE sr.run_id = p_run_id AND s.is_leaf AND sr.status = 'succeeded');
END $$;
