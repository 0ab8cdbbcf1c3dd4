-- register_workflow: the one way a definition enters the database.
--
-- It takes the whole definition as JSON, rejects anything malformed with an error that names
-- the problem, and creates a new version only when the steps or edges changed. Settings
-- (timeouts, retries, concurrency, worker class) of an unchanged shape are updated in place on
-- the current version. Registering the very document registered last changes nothing, so what
-- an operator tuned since (SQL UPDATE, environment) survives every worker restart.


CREATE FUNCTION qflow.register_workflow(p_definition jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_name     text;
    v_where    text;
    v_step     jsonb;
    v_sname    text;
    v_names    text[] := '{}';
    v_deps     jsonb := '{}';      -- step name -> array of dependency names
    v_dep      jsonb;
    v_order    text[] := '{}';     -- topological order (Kahn)
    v_pending  text[];
    v_progress boolean;
    v_shape    jsonb;
    v_current  qflow.workflows;
    v_version  integer;
    v_timeout  bigint;
    v_key      text;
    v_base     bigint;
BEGIN
    IF p_definition IS NULL OR jsonb_typeof(p_definition) <> 'object' THEN
        RAISE EXCEPTION 'qflow: a workflow definition must be a JSON object, got %', coalesce(jsonb_typeof(p_definition), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(p_definition) LOOP
        IF v_key NOT IN ('name', 'timeout_ms', 'description', 'steps') THEN
            RAISE EXCEPTION 'qflow: workflow definition has unknown field "%"', v_key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'known fields: name, timeout_ms, description, steps';
        END IF;
    END LOOP;

    v_name := p_definition ->> 'name';
    IF v_name IS NULL OR v_name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'qflow: workflow name % is invalid', coalesce(quote_literal(v_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use 1-63 lower-case letters, digits and _, starting with a letter';
    END IF;
    v_where := format('workflow %s', v_name);
    v_timeout := qflow.definition_int(p_definition, 'timeout_ms', 3600000, 1, 31536000000, v_where);

    IF jsonb_typeof(p_definition -> 'steps') IS DISTINCT FROM 'array' OR jsonb_array_length(p_definition -> 'steps') = 0 THEN
        RAISE EXCEPTION 'qflow: %: "steps" must be a non-empty array', v_where
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Names, fields and numbers of every step.
    FOR v_step IN SELECT value FROM jsonb_array_elements(p_definition -> 'steps') LOOP
        IF jsonb_typeof(v_step) <> 'object' THEN
            RAISE EXCEPTION 'qflow: %: every step must be a JSON object, got %', v_where, v_step
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_sname := v_step ->> 'name';
        IF v_sname IS NULL OR v_sname !~ '^[a-z][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'qflow: %: step name % is invalid', v_where, coalesce(quote_literal(v_sname), 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'use 1-63 lower-case letters, digits and _, starting with a letter';
        END IF;
        IF v_sname = ANY (v_names) THEN
            RAISE EXCEPTION 'qflow: %: duplicate step name "%"', v_where, v_sname
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_names := v_names || v_sname;
        v_where := format('workflow %s, step %s', v_name, v_sname);
        FOR v_key IN SELECT jsonb_object_keys(v_step) LOOP
            IF v_key NOT IN ('name', 'depends_on', 'worker_class', 'max_attempts', 'retry_base_ms', 'retry_max_ms',
                             'timeout_ms', 'max_concurrency', 'on_failure', 'resource_hints', 'condition',
                             'map', 'max_items', 'cache_ttl_ms', 'cache_key') THEN
                RAISE EXCEPTION 'qflow: %: unknown field "%"', v_where, v_key
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END LOOP;
        PERFORM qflow.definition_int(v_step, 'max_attempts', 3, 1, 1000, v_where);
        v_base := qflow.definition_int(v_step, 'retry_base_ms', 1000, 0, 86400000, v_where);
        IF qflow.definition_int(v_step, 'retry_max_ms', greatest(60000, v_base), 0, 86400000, v_where) < v_base THEN
            RAISE EXCEPTION 'qflow: %: "retry_max_ms" must not be below "retry_base_ms"', v_where
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM qflow.definition_int(v_step, 'timeout_ms', 60000, 1, 31536000000, v_where);
        PERFORM qflow.definition_int(v_step, 'max_concurrency', NULL, 1, 1000000, v_where);
        IF coalesce(v_step ->> 'worker_class', 'cpu') !~ '^[a-z][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'qflow: %: worker_class % is invalid', v_where, v_step -> 'worker_class'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF coalesce(v_step ->> 'on_failure', 'fail') NOT IN ('fail', 'skip') THEN
            RAISE EXCEPTION 'qflow: %: on_failure must be "fail" or "skip", got %', v_where, v_step -> 'on_failure'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_step ? 'condition' AND jsonb_typeof(v_step -> 'condition') IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION 'qflow: %: condition must be a JSON object ({"input": {...}, "<dependency>": {...}}), got %',
                            v_where, v_step -> 'condition'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_step ? 'map' AND (jsonb_typeof(v_step -> 'map') IS DISTINCT FROM 'string'
                               OR (v_step ->> 'map') !~ '^[^.]+(\.[^.]+)*$') THEN
            RAISE EXCEPTION 'qflow: %: map must name an array as "input.<field>[.<field>...]" or "<dependency>[.<field>...]", got %',
                            v_where, v_step -> 'map'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_step ? 'max_items' AND NOT v_step ? 'map' THEN
            RAISE EXCEPTION 'qflow: %: max_items bounds the elements of a map step; the step has no "map"', v_where
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM qflow.definition_int(v_step, 'max_items', 10000, 1, 1000000, v_where);
        PERFORM qflow.definition_int(v_step, 'cache_ttl_ms', NULL, 1, 31536000000, v_where);
        IF v_step ? 'cache_key' AND NOT v_step ? 'cache_ttl_ms' THEN
            RAISE EXCEPTION 'qflow: %: cache_key names what a cached step''s input hash covers; the step has no "cache_ttl_ms"', v_where
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_step ? 'cache_key' AND (jsonb_typeof(v_step -> 'cache_key') IS DISTINCT FROM 'array'
                                     OR jsonb_array_length(v_step -> 'cache_key') = 0
                                     OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_step -> 'cache_key') k
                                                 WHERE jsonb_typeof(k) <> 'string' OR k #>> '{}' !~ '^[^.]+(\.[^.]+)*$')) THEN
            RAISE EXCEPTION 'qflow: %: cache_key must be a non-empty array of paths such as "input.<field>" or "<dependency>[.<field>]", got %',
                            v_where, v_step -> 'cache_key'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_step ? 'resource_hints' AND jsonb_typeof(v_step -> 'resource_hints') <> 'object' THEN
            RAISE EXCEPTION 'qflow: %: resource_hints must be a JSON object', v_where
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_step ? 'depends_on' AND jsonb_typeof(v_step -> 'depends_on') <> 'array' THEN
            RAISE EXCEPTION 'qflow: %: depends_on must be an array of step names', v_where
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        v_deps := v_deps || jsonb_build_object(v_sname, coalesce(v_step -> 'depends_on', '[]'));
    END LOOP;

    -- Edges: every dependency names another, known step, once.
    FOR v_sname IN SELECT unnest(v_names) LOOP
        FOR v_dep IN SELECT value FROM jsonb_array_elements(v_deps -> v_sname) LOOP
            IF jsonb_typeof(v_dep) <> 'string' THEN
                RAISE EXCEPTION 'qflow: workflow %, step %: depends_on entries must be step names, got %', v_name, v_sname, v_dep
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF v_dep #>> '{}' = v_sname THEN
                RAISE EXCEPTION 'qflow: workflow %, step %: a step cannot depend on itself', v_name, v_sname
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF NOT (v_dep #>> '{}' = ANY (v_names)) THEN
                RAISE EXCEPTION 'qflow: workflow %, step %: unknown dependency "%"', v_name, v_sname, v_dep #>> '{}'
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = format('steps are: %s', array_to_string(v_names, ', '));
            END IF;
        END LOOP;
        IF (SELECT count(*) <> count(DISTINCT value) FROM jsonb_array_elements(v_deps -> v_sname)) THEN
            RAISE EXCEPTION 'qflow: workflow %, step %: a dependency is listed twice', v_name, v_sname
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- Conditions read the run input ("input") and the step's own dependencies' outputs.
    FOR v_step IN SELECT value FROM jsonb_array_elements(p_definition -> 'steps') WHERE value ? 'condition' LOOP
        IF (v_deps -> (v_step ->> 'name')) ? 'input' THEN
            RAISE EXCEPTION 'qflow: workflow %, step %: a step with a condition cannot depend on a step named "input" (the name a condition gives the run input)',
                            v_name, v_step ->> 'name'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR v_key IN SELECT jsonb_object_keys(v_step -> 'condition') LOOP
            IF v_key <> 'input' AND NOT (v_deps -> (v_step ->> 'name')) ? v_key THEN
                RAISE EXCEPTION 'qflow: workflow %, step %: condition names "%", which is neither "input" nor a dependency of the step',
                                v_name, v_step ->> 'name', v_key
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END LOOP;
    END LOOP;

    -- Maps and cache keys read the run input ("input") and the step's own dependencies' outputs.
    FOR v_step IN SELECT value FROM jsonb_array_elements(p_definition -> 'steps') WHERE value ?| ARRAY['map', 'cache_key'] LOOP
        FOR v_key IN SELECT split_part(p, '.', 1)
                       FROM (SELECT v_step ->> 'map' AS p
                             UNION ALL
                             SELECT jsonb_array_elements_text(coalesce(v_step -> 'cache_key', '[]'))) x
                      WHERE p IS NOT NULL LOOP
            IF v_key = 'input' AND (v_deps -> (v_step ->> 'name')) ? 'input' THEN
                RAISE EXCEPTION 'qflow: workflow %, step %: a step whose map or cache_key reads "input" cannot depend on a step named "input"',
                                v_name, v_step ->> 'name'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF v_key <> 'input' AND NOT (v_deps -> (v_step ->> 'name')) ? v_key THEN
                RAISE EXCEPTION 'qflow: workflow %, step %: map or cache_key reads "%", which is neither "input" nor a dependency of the step',
                                v_name, v_step ->> 'name', v_key
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END LOOP;
        IF (v_step ->> 'map') = 'input' THEN
            RAISE EXCEPTION 'qflow: workflow %, step %: the run input is an object; map over one of its fields ("input.<field>")',
                            v_name, v_step ->> 'name'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- Cycles: peel off steps whose dependencies are all placed; whatever is left is a cycle.
    v_pending := v_names;
    LOOP
        v_progress := false;
        FOR v_sname IN SELECT unnest(v_pending) LOOP
            IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(v_deps -> v_sname) d WHERE NOT (d = ANY (v_order))) THEN
                v_order := v_order || v_sname;
                v_pending := array_remove(v_pending, v_sname);
                v_progress := true;
            END IF;
        END LOOP;
        EXIT WHEN NOT v_progress;
    END LOOP;
    IF cardinality(v_pending) > 0 THEN
        RAISE EXCEPTION 'qflow: workflow %: dependency cycle among steps %', v_name, array_to_string(v_pending, ', ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The shape: step names with their sorted dependencies, and what a map step maps over (a
    -- run in flight keeps the shape it started with).
    SELECT jsonb_object_agg(s.name, CASE WHEN st.value ? 'map'
                                         THEN jsonb_build_object('depends_on', s.deps, 'map', st.value -> 'map')
                                         ELSE s.deps END)
      INTO v_shape
      FROM (SELECT n AS name, (SELECT coalesce(jsonb_agg(d ORDER BY d), '[]') FROM jsonb_array_elements_text(v_deps -> n) d) AS deps
              FROM unnest(v_names) n) s
      JOIN jsonb_array_elements(p_definition -> 'steps') st ON st.value ->> 'name' = s.name;

    -- Concurrent registrations of one workflow (several workers starting) take turns.
    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.register_workflow:' || v_name, 0));

    SELECT * INTO v_current FROM qflow.workflows WHERE name = v_name ORDER BY version DESC LIMIT 1;
    IF FOUND AND v_current.definition = p_definition THEN
        RETURN v_current.version;
    ELSIF FOUND AND v_current.shape = v_shape THEN
        v_version := v_current.version;
        UPDATE qflow.workflows
           SET timeout_ms = v_timeout, description = coalesce(p_definition ->> 'description', ''),
               definition = p_definition, updated_at = now()
         WHERE name = v_name AND version = v_version;
    ELSE
        v_version := coalesce(v_current.version, 0) + 1;
        INSERT INTO qflow.workflows (name, version, timeout_ms, description, definition, shape)
        VALUES (v_name, v_version, v_timeout, coalesce(p_definition ->> 'description', ''), p_definition, v_shape);
    END IF;

    INSERT INTO qflow.steps AS s (workflow, version, name, position, dep_count, is_leaf, worker_class, max_attempts,
                                  retry_base_ms, retry_max_ms, timeout_ms, max_concurrency, on_failure, resource_hints,
                                  condition, map_over, max_items, cache_ttl_ms, cache_key)
    SELECT v_name, v_version, st ->> 'name',
           array_position(v_order, st ->> 'name') - 1,
           jsonb_array_length(v_deps -> (st ->> 'name')),
           NOT EXISTS (SELECT 1 FROM jsonb_each(v_deps) e WHERE e.value ? (st ->> 'name')),
           coalesce(st ->> 'worker_class', 'cpu'),
           qflow.definition_int(st, 'max_attempts', 3, 1, 1000, ''),
           qflow.definition_int(st, 'retry_base_ms', 1000, 0, 86400000, ''),
           qflow.definition_int(st, 'retry_max_ms', greatest(60000, qflow.definition_int(st, 'retry_base_ms', 1000, 0, 86400000, '')), 0, 86400000, ''),
           qflow.definition_int(st, 'timeout_ms', 60000, 1, 31536000000, ''),
           qflow.definition_int(st, 'max_concurrency', NULL, 1, 1000000, '')::integer,
           coalesce(st ->> 'on_failure', 'fail'),
           coalesce(st -> 'resource_hints', '{}'),
           st -> 'condition',
           string_to_array(st ->> 'map', '.'),
           qflow.definition_int(st, 'max_items', 10000, 1, 1000000, '')::integer,
           qflow.definition_int(st, 'cache_ttl_ms', NULL, 1, 31536000000, ''),
           CASE WHEN st ? 'cache_key' THEN ARRAY(SELECT jsonb_array_elements_text(st -> 'cache_key')) END
      FROM jsonb_array_elements(p_definition -> 'steps') st
    ON CONFLICT (workflow, version, name) DO UPDATE
       SET worker_class = excluded.worker_class, max_attempts = excluded.max_attempts,
           retry_base_ms = excluded.retry_base_ms, retry_max_ms = excluded.retry_max_ms,
           timeout_ms = excluded.timeout_ms, max_concurrency = excluded.max_concurrency,
           on_failure = excluded.on_failure, resource_hints = excluded.resource_hints,
           condition = excluded.condition, max_items = excluded.max_items,
           cache_ttl_ms = excluded.cache_ttl_ms, cache_key = excluded.cache_key;

    INSERT INTO qflow.step_deps (workflow, version, step, depends_on)
    SELECT v_name, v_version, e.key, d
      FROM jsonb_each(v_deps) e, jsonb_array_elements_text(e.value) d
    ON CONFLICT DO NOTHING;

    RETURN v_version;
END $$;
