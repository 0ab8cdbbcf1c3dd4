-- legacy_steps lists a workflow version's steps in the order a legacy job runs them, with
-- their conditions (the job skips steps as the step engine would: 0515_step_wanted.sql) and
-- what a map step maps over (the job runs its elements one after another).
CREATE FUNCTION qflow.legacy_steps(p_workflow text, p_version integer)
RETURNS TABLE (name text, depends_on text[], timeout_ms bigint, condition jsonb, map_over text[], max_items integer)
LANGUAGE sql STABLE AS $$
    SELECT s.name,
           coalesce((SELECT array_agg(d.depends_on ORDER BY d.depends_on) FROM qflow.step_deps d
                      WHERE d.workflow = s.workflow AND d.version = s.version AND d.step = s.name), '{}'),
           s.timeout_ms, s.condition, s.map_over, s.max_items
      FROM qflow.steps s
     WHERE s.workflow = p_workflow AND s.version = p_version
     ORDER BY s.position;
$$;
