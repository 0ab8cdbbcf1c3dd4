-- step_input: the dependency part of a step's input, {dependency name: its output} (a skipped
-- dependency gives null), read when the step is claimed. The other part is the run input. An
-- element of a map step gets its element instead of the array it was cut from: p_exclude names
-- that dependency, left out (otherwise a 10,000-element map would send the whole array 10,000
-- times).
--
-- A one-row set-returning SQL function, called in FROM (LATERAL): Postgres inlines it into the
-- calling statement as a subquery, so it costs no call and shares the caller's cached plan (a
-- scalar SQL function with an aggregate cannot be inlined, and would be planned on every call).
CREATE FUNCTION qflow.step_input(p_run_id bigint, p_workflow text, p_version integer, p_step text,
                                 p_exclude text DEFAULT NULL)
RETURNS TABLE (deps jsonb)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(d.depends_on, dep.output), '{}')
      FROM qflow.step_deps d
      JOIN qflow.step_runs dep ON dep.run_id = p_run_id AND dep.step = d.depends_on
     WHERE d.workflow = p_workflow AND d.version = p_version AND d.step = p_step
       AND d.depends_on IS DISTINCT FROM p_exclude
$$;
