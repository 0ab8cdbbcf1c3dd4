-- step_input: the dependency part of a step's input, {dependency name: its output} (a skipped
-- dependency gives null), read when the step is claimed. The other part is the run input. An
-- element of a map step gets its element instead of the array it was cut from: p_cut is what
-- the step maps over (steps.map_over), and that array is left out of its dependency's output
-- (the whole dependency when the step maps over all of it). Otherwise a 10,000-element map
-- would send the whole array 10,000 times.
--
-- A one-row set-returning SQL function, called in FROM (LATERAL): Postgres inlines it into the
-- calling statement as a subquery, so it costs no call and shares the caller's cached plan (a
-- scalar SQL function with an aggregate cannot be inlined, and would be planned on every call).
CREATE FUNCTION qflow.step_input(p_run_id bigint, p_workflow text, p_version integer, p_step text,
                                 p_cut text[] DEFAULT NULL)
RETURNS TABLE (deps jsonb)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(d.depends_on, CASE WHEN d.depends_on = p_cut[1] THEN dep.output #- p_cut[2:]
                                                        ELSE dep.output END), '{}')
      FROM qflow.step_deps d
      JOIN qflow.step_runs dep ON dep.run_id = p_run_id AND dep.step = d.depends_on
     WHERE d.workflow = p_workflow AND d.version = p_version AND d.step = p_step
       AND (d.depends_on IS DISTINCT FROM p_cut[1] OR cardinality(p_cut) > 1)
$$;
