-- step_value reads the value a map step maps over, or a cache key's part: p_path's first
-- element is "input" (the run input, p_input) or a dependency of the step (its output in the
-- run), the rest descend into it by keys (array elements by index). NULL when absent.
CREATE FUNCTION qflow.step_value(p_run_id bigint, p_input jsonb, p_path text[])
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_path[1] = 'input' THEN p_input
                ELSE (SELECT sr.output FROM qflow.step_runs sr WHERE sr.run_id = p_run_id AND sr.step = p_path[1])
           END #> p_path[2:]
$$;
