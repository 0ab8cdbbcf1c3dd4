-- configure_workflow: operator settings of a workflow in one call, and a view to read them.
--
-- Workers apply their environment (pipelines/rollout) through it at start; an operator may
-- call it, or UPDATE the tables directly: both take effect for the next run or dispatch without
-- restarting anything. Settings go to the workflow's current version (the one new runs pin);
-- registering the same definition again leaves them alone. Only the keys given change.
--
--   enabled, canary_percent   qflow.rollouts (a missing row is created with enabled = false and
--                             default_canary_percent, else 10)
--   timeout_ms                qflow.workflows.timeout_ms (the run deadline)
--   max_attempts,             every step of the workflow
--   retry_base_ms
--   steps: {name: {timeout_ms, max_attempts, retry_base_ms, max_concurrency}}   one step
--
-- A retry base above a step's retry cap raises the cap with it, so the backoff stays monotone.
CREATE FUNCTION qflow.configure_workflow(p_workflow text, p_settings jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_version integer;
    v_where   text := format('configuring workflow %s', p_workflow);
    v_key     text;
    v_step    record;
    v_enabled boolean;
    v_canary  integer;
    v_all     jsonb;
BEGIN
    IF p_settings IS NULL OR jsonb_typeof(p_settings) <> 'object' THEN
        RAISE EXCEPTION 'qflow: %: settings must be a JSON object', v_where
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(p_settings) LOOP
        IF v_key NOT IN ('enabled', 'canary_percent', 'default_canary_percent', 'timeout_ms', 'max_attempts', 'retry_base_ms', 'steps') THEN
            RAISE EXCEPTION 'qflow: %: unknown setting "%"', v_where, v_key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'settings are enabled, canary_percent, default_canary_percent, timeout_ms, max_attempts, retry_base_ms, steps';
        END IF;
    END LOOP;

    -- Registration and configuration of one workflow take turns.
    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.register_workflow:' || p_workflow, 0));
    SELECT max(version) INTO v_version FROM qflow.workflows WHERE name = p_workflow;
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'qflow: %: unknown workflow', v_where
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'SELECT name FROM qflow.list_workflows() shows the registered workflows';
    END IF;

    IF p_settings ? 'enabled' OR p_settings ? 'canary_percent' THEN
        IF p_settings ? 'enabled' AND jsonb_typeof(p_settings -> 'enabled') <> 'boolean' THEN
            RAISE EXCEPTION 'qflow: %: "enabled" must be true or false, got %', v_where, p_settings -> 'enabled'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_enabled := (p_settings ->> 'enabled')::boolean;
        v_canary := qflow.definition_int(p_settings, 'canary_percent', NULL, 0, 100, v_where);
        INSERT INTO qflow.rollouts AS r (workflow, enabled, canary_percent)
        VALUES (p_workflow, coalesce(v_enabled, false),
                coalesce(v_canary, qflow.definition_int(p_settings, 'default_canary_percent', 10, 0, 100, v_where)))
        ON CONFLICT (workflow) DO UPDATE
           SET enabled = coalesce(v_enabled, r.enabled),
               canary_percent = coalesce(v_canary, r.canary_percent),
               updated_at = now();
    END IF;

    IF p_settings ? 'timeout_ms' THEN
        UPDATE qflow.workflows
           SET timeout_ms = qflow.definition_int(p_settings, 'timeout_ms', NULL, 1, 31536000000, v_where), updated_at = now()
         WHERE name = p_workflow AND version = v_version;
    END IF;

    v_all := jsonb_strip_nulls(jsonb_build_object('max_attempts', p_settings -> 'max_attempts', 'retry_base_ms', p_settings -> 'retry_base_ms'));
    IF v_all <> '{}' THEN
        PERFORM qflow.configure_step(p_workflow, v_version, NULL, v_all, v_where);
    END IF;

    IF p_settings ? 'steps' THEN
        IF jsonb_typeof(p_settings -> 'steps') <> 'object' THEN
            RAISE EXCEPTION 'qflow: %: "steps" must be an object of step name -> settings', v_where
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR v_step IN SELECT key, value FROM jsonb_each(p_settings -> 'steps') ORDER BY key LOOP
            PERFORM qflow.configure_step(p_workflow, v_version, v_step.key, v_step.value,
                                         format('%s, step %s', v_where, v_step.key));
        END LOOP;
    END IF;
    RETURN v_version;
END $$;
