-- invalidate_cache clears the cached outputs of a workflow's step (every version), or of all its
-- cached steps when p_step is NULL: the next run of that step runs it. Returns how many entries
-- went. Runs that already reused an output keep it.
CREATE FUNCTION qflow.invalidate_cache(p_workflow text, p_step text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM qflow.workflows WHERE name = p_workflow) THEN
        RAISE EXCEPTION 'qflow: unknown workflow %', coalesce(quote_literal(p_workflow), 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    IF p_step IS NOT NULL AND NOT EXISTS (SELECT 1 FROM qflow.steps WHERE workflow = p_workflow AND name = p_step) THEN
        RAISE EXCEPTION 'qflow: workflow % has no step %', p_workflow, quote_literal(p_step)
            USING ERRCODE = 'no_data_found',
                  HINT = (SELECT 'its cached steps: ' || coalesce(string_agg(DISTINCT name, ', '), 'none')
                            FROM qflow.steps WHERE workflow = p_workflow AND cache_ttl_ms IS NOT NULL);
    END IF;
    DELETE FROM qflow.step_cache WHERE workflow = p_workflow AND (p_step IS NULL OR step = p_step);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;
