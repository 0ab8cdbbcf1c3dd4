-- prepare_steps: what happens to a step the moment it becomes ready, before any worker can see
-- it (every procedure that makes steps ready calls it: runs_start, settle_steps, fork_steps,
-- retry_run), so that a ready row is always something a worker can run.
--
-- Cached steps (steps.cache_ttl_ms): the step's input -- the run input and its dependencies'
-- outputs, or only the paths of steps.cache_key -- is hashed (SHA-256 of the canonical jsonb
-- text) into input_hash. When qflow.step_cache holds an output for the same workflow, version,
-- step and hash, younger than the step's lifetime, the step succeeds with it at once: no job,
-- no handler, its attempt recorded as 'cached'. Otherwise it runs, and its output is cached when
-- it succeeds (0520_settle_steps.sql).
--
-- Map steps (steps.map_over): the array is read (0342_step_value.sql) and the step's row
-- becomes running with one element row per element, "<step>[<index>]", ready, inserted in one
-- statement whatever the count; the elements are queued by the caller like any ready step. An
-- empty array succeeds the step at once with []. Something that is not an array, or an array
-- longer than max_items, fails the step -- and so the run -- with an error saying which (or
-- skips it, under on_failure: skip). A cached map step is looked up first: a hit skips the map.
--
-- Steps settled here (hits, empty maps, skips) are settled in turn, which may make more steps
-- ready and prepare them (recursively). Returns the runs with rows made ready here and the net
-- change in the number of ready rows (elements and newly ready successors, less the steps that
-- stopped being ready), for the caller's dispatch. The caller holds the runs' locks.
CREATE FUNCTION qflow.prepare_steps(p_run_ids bigint[], OUT ready_runs bigint[], OUT ready_steps integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_hits     record;   -- cache hits, as parallel arrays
    v_maps     record;   -- map steps: settled at once, failed, and what was expanded
    v_more     record;
BEGIN
    ready_steps := 0;

    WITH todo AS (
        SELECT sr.run_id, sr.step, sr.workflow, sr.version, sr.attempt, s.cache_ttl_ms,
               encode(sha256(convert_to(
                   CASE WHEN s.cache_key IS NULL
                        THEN jsonb_build_object('input', r.input, 'deps', si.deps)
                        ELSE (SELECT jsonb_object_agg(k, qflow.step_value(sr.run_id, r.input, string_to_array(k, '.')))
                                FROM unnest(s.cache_key) k)
                   END::text, 'UTF8')), 'hex') AS input_hash
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
          JOIN qflow.runs r ON r.id = sr.run_id
         CROSS JOIN LATERAL qflow.step_input(sr.run_id, sr.workflow, sr.version, sr.step) si
         WHERE sr.run_id = ANY (p_run_ids) AND sr.status = 'ready' AND sr.task IS NULL
           AND s.cache_ttl_ms IS NOT NULL AND sr.input_hash IS NULL
    ), looked AS (
        SELECT t.*, c.output AS cached
          FROM todo t
          LEFT JOIN qflow.step_cache c
            ON c.workflow = t.workflow AND c.version = t.version AND c.step = t.step AND c.input_hash = t.input_hash
           AND c.expires_at > now() AND c.created_at > now() - t.cache_ttl_ms * interval '1 millisecond'
    ), marked AS (
        UPDATE qflow.step_runs sr
           SET input_hash = l.input_hash,
               status = CASE WHEN l.cached IS NOT NULL THEN 'succeeded' ELSE sr.status END,
               output = l.cached,
               attempt = CASE WHEN l.cached IS NOT NULL THEN sr.attempt + 1 ELSE sr.attempt END,
               started_at = CASE WHEN l.cached IS NOT NULL THEN now() END,
               finished_at = CASE WHEN l.cached IS NOT NULL THEN now() END
          FROM looked l
         WHERE sr.run_id = l.run_id AND sr.step = l.step
        RETURNING sr.run_id, sr.step, sr.workflow, sr.version, sr.attempt, sr.status
    ), recorded AS (
        INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
        SELECT m.run_id, m.step, m.attempt, 'cached', now(), now() FROM marked m WHERE m.status = 'succeeded'
        RETURNING step_attempts.run_id
    )
    SELECT array_agg(m.run_id) AS runs, array_agg(m.step) AS steps, array_agg(m.workflow) AS flows,
           array_agg(m.version) AS versions, array_agg(false) AS skipped
      INTO v_hits
      FROM marked m
     WHERE m.status = 'succeeded';

    WITH todo AS (
        SELECT sr.run_id, sr.step, sr.workflow, sr.version, sr.priority, s.on_failure, s.max_items, s.map_over,
               qflow.step_value(sr.run_id, r.input, s.map_over) AS arr
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
          JOIN qflow.runs r ON r.id = sr.run_id
         WHERE sr.run_id = ANY (p_run_ids) AND sr.status = 'ready' AND sr.task IS NULL AND sr.tasks IS NULL
           AND s.map_over IS NOT NULL
    ), judged AS (
        SELECT t.*,
               CASE WHEN jsonb_typeof(t.arr) IS DISTINCT FROM 'array'
                    THEN format('map over %s: expected an array, got %s', array_to_string(t.map_over, '.'),
                                coalesce(jsonb_typeof(t.arr), 'nothing'))
                    WHEN jsonb_array_length(t.arr) > t.max_items
                    THEN format('map over %s: %s elements, more than the step''s max_items (%s)',
                                array_to_string(t.map_over, '.'), jsonb_array_length(t.arr), t.max_items)
               END AS problem,
               CASE WHEN jsonb_typeof(t.arr) = 'array' THEN jsonb_array_length(t.arr) END AS n
          FROM todo t
    ), parents AS (
        UPDATE qflow.step_runs sr
           SET status = CASE WHEN j.problem IS NOT NULL AND j.on_failure = 'skip' THEN 'skipped'
                             WHEN j.problem IS NOT NULL THEN 'failed'
                             WHEN j.n = 0 THEN 'succeeded'
                             ELSE 'running' END,
               tasks = CASE WHEN j.problem IS NULL THEN j.n END,
               remaining_tasks = CASE WHEN j.problem IS NULL THEN j.n END,
               output = CASE WHEN j.problem IS NULL AND j.n = 0 THEN '[]'::jsonb END,
               error = j.problem,
               attempt = sr.attempt + 1,
               queued_at = now(), started_at = now(),
               finished_at = CASE WHEN j.problem IS NOT NULL OR j.n = 0 THEN now() END
          FROM judged j
         WHERE sr.run_id = j.run_id AND sr.step = j.step
        RETURNING sr.run_id, sr.step, sr.workflow, sr.version, sr.status, sr.error
    ), elements AS (
        INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority, task, item)
        SELECT j.run_id, j.step || '[' || (e.ord - 1) || ']', j.workflow, j.version, 'ready', 0, j.priority,
               e.ord - 1, e.value
          FROM judged j
         CROSS JOIN LATERAL jsonb_array_elements(j.arr) WITH ORDINALITY AS e(value, ord)
         WHERE j.problem IS NULL
        RETURNING step_runs.run_id
    )
    SELECT array_agg(p.run_id) FILTER (WHERE p.status IN ('succeeded', 'skipped')) AS runs,
           array_agg(p.step) FILTER (WHERE p.status IN ('succeeded', 'skipped')) AS steps,
           array_agg(p.workflow) FILTER (WHERE p.status IN ('succeeded', 'skipped')) AS flows,
           array_agg(p.version) FILTER (WHERE p.status IN ('succeeded', 'skipped')) AS versions,
           array_agg(p.status = 'skipped') FILTER (WHERE p.status IN ('succeeded', 'skipped')) AS skipped,
           array_agg(p.run_id) FILTER (WHERE p.status = 'failed') AS failed_runs,
           array_agg(p.step) FILTER (WHERE p.status = 'failed') AS failed_steps,
           array_agg(p.error) FILTER (WHERE p.status = 'failed') AS failed_errors,
           count(*) AS handled,
           (SELECT count(*) FROM elements) AS elements,
           (SELECT array_agg(DISTINCT e.run_id) FROM elements e) AS element_runs
      INTO v_maps
      FROM parents p;

    -- A map step that cannot map fails its run, as a step out of retries does.
    PERFORM qflow.finish_run(f.run_id, 'failed', format('step %s failed: %s', f.step, f.error))
       FROM unnest(v_maps.failed_runs, v_maps.failed_steps, v_maps.failed_errors) AS f(run_id, step, error);

    ready_steps := coalesce(cardinality(v_hits.runs), 0) * -1 - v_maps.handled + v_maps.elements;
    ready_runs := v_maps.element_runs;

    IF v_hits.runs IS NOT NULL OR v_maps.runs IS NOT NULL THEN
        SELECT * INTO v_more
          FROM qflow.settle_steps(coalesce(v_hits.runs, '{}') || coalesce(v_maps.runs, '{}'),
                                  coalesce(v_hits.steps, '{}') || coalesce(v_maps.steps, '{}'),
                                  coalesce(v_hits.flows, '{}') || coalesce(v_maps.flows, '{}'),
                                  coalesce(v_hits.versions, '{}') || coalesce(v_maps.versions, '{}'),
                                  coalesce(v_hits.skipped, '{}') || coalesce(v_maps.skipped, '{}'));
        ready_runs := ARRAY(SELECT DISTINCT r FROM unnest(coalesce(ready_runs, '{}') || coalesce(v_more.ready_runs, '{}')) r);
        ready_steps := ready_steps + v_more.ready_steps;
    END IF;
    IF cardinality(ready_runs) = 0 THEN
        ready_runs := NULL;
    END IF;
END $$;
