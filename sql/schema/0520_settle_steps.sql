-- settle_steps counts steps that reached succeeded or skipped (given as parallel arrays, each
-- run already locked by the caller; p_skipped says which were skipped, NULL: none): each
-- successor loses one pending dependency per settled dependency and at zero becomes ready, or
-- is skipped -- every dependency skipped, or its condition false (0515_step_wanted.sql) -- and
-- is settled in turn; each run loses one remaining step per settled step;
-- slots freed under concurrency limits are handed on; and a run with no step left succeeds,
-- its output being its leaf steps' outputs (finish_run's other work, stopping live steps and
-- jobs, has nothing to do for such a run). The steps it made ready are not dispatched here:
-- the caller does that, after taking one itself where it may (eager dispatch,
-- 0550_finish_steps.sql), but prepared (0518_prepare_steps.sql: cache lookups, maps expanded).
-- Returns the runs with steps made ready and how many were.
--
-- Elements of a map step settle into their step: each succeeded element counts its step's
-- remaining_tasks down, and the step whose last element succeeded succeeds with their outputs
-- in element order, and is settled as above. A cached step that succeeded (and did not come from
-- the cache) leaves its output in qflow.step_cache.
CREATE FUNCTION qflow.settle_steps(p_run_ids bigint[], p_steps text[], p_workflows text[], p_versions integer[],
                                   p_skipped boolean[], OUT ready_runs bigint[], OUT ready_steps integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_finished bigint[];   -- runs whose last step settled
    v_limited  boolean;    -- a settled step has a concurrency limit
    v_group    record;
    v_sk_runs  bigint[];   -- successors skipped, to settle in turn
    v_sk_steps text[];
    v_sk_flows text[];
    v_sk_vers  integer[];
    v_more     record;
    v_prep     boolean;    -- a step made ready is a map or cached step
    v_cached   boolean;    -- a settled step is cached
    v_parents  record;
    -- the map steps of settled elements that have a concurrency limit
    v_el_steps text[];
    v_el_flows text[];
    v_el_vers  integer[];
BEGIN
    -- Elements of map steps settle into their steps; a step whose last element succeeded takes
    -- their place in what is settled below.
    -- (A plain expression, not a query: PL/pgSQL evaluates it without the executor, and every
    -- hop asks.)
    IF strpos(array_to_string(p_steps, ','), '[') > 0 THEN
        -- Each element held a slot of its step's limit, now free.
        SELECT array_agg(x.step), array_agg(x.workflow), array_agg(x.version)
          INTO v_el_steps, v_el_flows, v_el_vers
          FROM (SELECT DISTINCT s.name AS step, s.workflow, s.version
                  FROM unnest(p_steps, p_workflows, p_versions) AS d(step, workflow, version)
                  JOIN qflow.steps s ON s.workflow = d.workflow AND s.version = d.version AND s.name = split_part(d.step, '[', 1)
                 WHERE strpos(d.step, '[') > 0 AND s.max_concurrency IS NOT NULL) x;
        WITH el AS (
            SELECT d.run_id, split_part(d.step, '[', 1) AS step, count(*)::integer AS n
              FROM unnest(p_run_ids, p_steps) AS d(run_id, step)
             WHERE strpos(d.step, '[') > 0
             GROUP BY 1, 2
        ), done AS (
            -- One UPDATE: a row changed twice in one statement keeps only one of the changes.
            UPDATE qflow.step_runs sr
               SET remaining_tasks = sr.remaining_tasks - el.n,
                   status = CASE WHEN sr.remaining_tasks = el.n THEN 'succeeded' ELSE sr.status END,
                   finished_at = CASE WHEN sr.remaining_tasks = el.n THEN now() END,
                   output = CASE WHEN sr.remaining_tasks = el.n
                                 THEN (SELECT jsonb_agg(e.output ORDER BY e.task) FROM qflow.step_runs e
                                        WHERE e.run_id = sr.run_id AND e.def_step = sr.step AND e.task IS NOT NULL) END
              FROM el
             WHERE sr.run_id = ANY (p_run_ids) AND sr.run_id = el.run_id AND sr.step = el.step AND sr.status = 'running'
            RETURNING sr.run_id, sr.step, sr.workflow, sr.version, sr.status
        )
        SELECT array_agg(x.run_id) AS runs, array_agg(x.step) AS steps, array_agg(x.workflow) AS flows,
               array_agg(x.version) AS versions, array_agg(x.skipped) AS skipped
          INTO v_parents
          FROM (SELECT d.run_id, d.step, d.workflow, d.version, coalesce(d.skipped, false) AS skipped
                  FROM unnest(p_run_ids, p_steps, p_workflows, p_versions, p_skipped) AS d(run_id, step, workflow, version, skipped)
                 WHERE strpos(d.step, '[') = 0
                UNION ALL
                SELECT dn.run_id, dn.step, dn.workflow, dn.version, false FROM done dn WHERE dn.status = 'succeeded') x;
        p_run_ids := coalesce(v_parents.runs, '{}');
        p_steps := coalesce(v_parents.steps, '{}');
        p_workflows := coalesce(v_parents.flows, '{}');
        p_versions := coalesce(v_parents.versions, '{}');
        p_skipped := coalesce(v_parents.skipped, '{}');
    END IF;

    WITH settled AS (
        SELECT d.run_id, d.step, d.workflow, d.version, coalesce(d.skipped, false) AS skipped
          FROM unnest(p_run_ids, p_steps, p_workflows, p_versions, p_skipped) AS d(run_id, step, workflow, version, skipped)
    ), counts AS (
        SELECT d.run_id, dep.step, count(*)::integer AS n, bool_or(NOT d.skipped) AS ran
          FROM settled d
          JOIN qflow.step_deps dep ON dep.workflow = d.workflow AND dep.version = d.version AND dep.depends_on = d.step
         GROUP BY d.run_id, dep.step
    ), decided AS (
        -- A successor reached by a dependency that ran, with no condition, needs no lookup.
        SELECT c.run_id, c.step, c.n,
               CASE WHEN sr.remaining_deps > c.n THEN 'waiting'
                    WHEN (c.ran AND st.condition IS NULL)
                      OR qflow.step_wanted(sr.run_id, sr.workflow, sr.version, sr.step, st.condition) THEN 'ready'
                    ELSE 'skipped' END AS status,
               st.map_over IS NOT NULL OR st.cache_ttl_ms IS NOT NULL AS prep
          FROM counts c
          JOIN qflow.step_runs sr ON sr.run_id = c.run_id AND sr.step = c.step AND sr.status = 'waiting'
                                 AND sr.run_id = ANY (p_run_ids)   -- the primary key, whatever the statistics say
          JOIN qflow.steps st ON st.workflow = sr.workflow AND st.version = sr.version AND st.name = sr.step
    ), successors AS (
        UPDATE qflow.step_runs succ
           SET remaining_deps = succ.remaining_deps - x.n, status = x.status,
               finished_at = CASE WHEN x.status = 'skipped' THEN now() END
          FROM decided x
         WHERE succ.run_id = ANY (p_run_ids) AND succ.run_id = x.run_id AND succ.step = x.step AND succ.status = 'waiting'
        RETURNING succ.run_id, succ.step, succ.workflow, succ.version, succ.status, x.prep
    ), counted AS (
        UPDATE qflow.runs r
           SET remaining_steps = r.remaining_steps - x.n
          FROM (SELECT d.run_id, count(*)::integer AS n FROM settled d GROUP BY d.run_id) x
         WHERE r.id = ANY (p_run_ids) AND r.id = x.run_id   -- the primary key, whatever the statistics say
        RETURNING r.id, r.remaining_steps
    ), flags AS (
        -- What the settled steps are: limited (slots to hand on), cached (outputs to keep).
        SELECT coalesce(bool_or(st.max_concurrency IS NOT NULL), false) AS limited,
               coalesce(bool_or(st.cache_ttl_ms IS NOT NULL AND NOT d.skipped), false) AS cached
          FROM settled d
          JOIN qflow.steps st ON st.workflow = d.workflow AND st.version = d.version AND st.name = d.step
    )
    -- (One aggregate over the successors, not a subquery per figure: each subquery is a plan
    -- node to set up on every call.)
    SELECT (SELECT array_agg(c.id) FROM counted c WHERE c.remaining_steps = 0),
           x.ready_runs, x.ready_steps, f.limited, x.sk_runs, x.sk_steps, x.sk_flows, x.sk_vers, x.prep, f.cached
      INTO v_finished, ready_runs, ready_steps, v_limited, v_sk_runs, v_sk_steps, v_sk_flows, v_sk_vers, v_prep, v_cached
      FROM (SELECT array_agg(DISTINCT s.run_id) FILTER (WHERE s.status = 'ready') AS ready_runs,
                   count(*) FILTER (WHERE s.status = 'ready') AS ready_steps,
                   array_agg(s.run_id) FILTER (WHERE s.status = 'skipped') AS sk_runs,
                   array_agg(s.step) FILTER (WHERE s.status = 'skipped') AS sk_steps,
                   array_agg(s.workflow) FILTER (WHERE s.status = 'skipped') AS sk_flows,
                   array_agg(s.version) FILTER (WHERE s.status = 'skipped') AS sk_vers,
                   coalesce(bool_or(s.prep) FILTER (WHERE s.status = 'ready'), false) AS prep
              FROM successors s) x
     CROSS JOIN flags f;

    -- A cached step that ran leaves its output for the next run with the same input.
    IF v_cached THEN
        INSERT INTO qflow.step_cache AS c (workflow, version, step, input_hash, output, run_id, expires_at)
        SELECT sr.workflow, sr.version, sr.step, sr.input_hash, sr.output, sr.run_id,
               now() + st.cache_ttl_ms * interval '1 millisecond'
          FROM unnest(p_run_ids, p_steps, p_skipped) AS d(run_id, step, skipped)
          JOIN qflow.step_runs sr ON sr.run_id = d.run_id AND sr.step = d.step
          JOIN qflow.steps st ON st.workflow = sr.workflow AND st.version = sr.version AND st.name = sr.step
         WHERE NOT coalesce(d.skipped, false) AND sr.status = 'succeeded' AND sr.input_hash IS NOT NULL
           AND st.cache_ttl_ms IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM qflow.step_attempts a
                            WHERE a.run_id = sr.run_id AND a.step = sr.step AND a.attempt = sr.attempt AND a.status = 'cached')
        ON CONFLICT (workflow, version, step, input_hash) DO UPDATE
           SET output = excluded.output, run_id = excluded.run_id, created_at = now(), expires_at = excluded.expires_at;
    END IF;

    -- Steps made ready that are maps or cached are prepared before anyone can take them.
    IF v_prep THEN
        SELECT * INTO v_more FROM qflow.prepare_steps(ready_runs);
        ready_runs := ARRAY(SELECT DISTINCT r FROM unnest(coalesce(ready_runs, '{}') || coalesce(v_more.ready_runs, '{}')) r);
        ready_steps := ready_steps + v_more.ready_steps;
        IF cardinality(ready_runs) = 0 THEN
            ready_runs := NULL;
        END IF;
    END IF;

    -- Slots freed under concurrency limits, in (workflow, position) order like every taker of
    -- those locks (0420_dispatch.sql).
    IF v_limited OR v_el_steps IS NOT NULL THEN
        FOR v_group IN
            SELECT DISTINCT d.workflow, s.position, d.step
              FROM (SELECT * FROM unnest(p_steps, p_workflows, p_versions) AS x(step, workflow, version)
                    UNION ALL
                    SELECT * FROM unnest(v_el_steps, v_el_flows, v_el_vers)) AS d(step, workflow, version)
              JOIN qflow.steps s ON s.workflow = d.workflow AND s.version = d.version AND s.name = d.step
             WHERE s.max_concurrency IS NOT NULL
             ORDER BY 1, 2
        LOOP
            PERFORM qflow.dispatch_limited(v_group.workflow, v_group.step);
        END LOOP;
    END IF;

    IF v_finished IS NOT NULL THEN
        UPDATE qflow.runs r
           SET status = 'succeeded', finished_at = now(), error = NULL, output = qflow.run_output(r.id)
         WHERE r.id = ANY (v_finished) AND r.status = 'running';
    END IF;

    -- Skips cascade: the successors skipped here are settled in turn.
    IF v_sk_runs IS NOT NULL THEN
        SELECT * INTO v_more
          FROM qflow.settle_steps(v_sk_runs, v_sk_steps, v_sk_flows, v_sk_vers,
                                  array_fill(true, ARRAY[cardinality(v_sk_runs)]));
        ready_runs := ARRAY(SELECT DISTINCT r FROM unnest(ready_runs || v_more.ready_runs) r);
        ready_steps := ready_steps + v_more.ready_steps;
        IF cardinality(ready_runs) = 0 THEN
            ready_runs := NULL;
        END IF;
    END IF;
END $$;
