-- configure_step changes the settings of one step (or, with p_step NULL, of every step) of a
-- workflow version; qflow.configure_workflow is its caller and states the rules.

CREATE FUNCTION qflow.configure_step(p_workflow text, p_version integer, p_step text, p_settings jsonb, p_where text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
BEGIN
    IF jsonb_typeof(p_settings) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'qflow: %: settings must be a JSON object', p_where
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(p_settings) LOOP
        IF v_key NOT IN ('timeout_ms', 'max_attempts', 'retry_base_ms', 'max_concurrency') THEN
            RAISE EXCEPTION 'qflow: %: unknown setting "%"', p_where, v_key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'step settings are timeout_ms, max_attempts, retry_base_ms, max_concurrency';
        END IF;
    END LOOP;
    UPDATE qflow.steps s
       SET timeout_ms      = coalesce(qflow.definition_int(p_settings, 'timeout_ms', NULL, 1, 31536000000, p_where), s.timeout_ms),
           max_attempts    = coalesce(qflow.definition_int(p_settings, 'max_attempts', NULL, 1, 1000, p_where)::integer, s.max_attempts),
           retry_base_ms   = coalesce(qflow.definition_int(p_settings, 'retry_base_ms', NULL, 0, 86400000, p_where), s.retry_base_ms),
           retry_max_ms    = greatest(s.retry_max_ms, coalesce(qflow.definition_int(p_settings, 'retry_base_ms', NULL, 0, 86400000, p_where), 0)),
           max_concurrency = CASE WHEN p_settings ? 'max_concurrency'
                                  THEN qflow.definition_int(p_settings, 'max_concurrency', NULL, 1, 1000000, p_where)::integer
                                  ELSE s.max_concurrency END
     WHERE s.workflow = p_workflow AND s.version = p_version AND (p_step IS NULL OR s.name = p_step);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qflow: %: no such step', p_where
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
