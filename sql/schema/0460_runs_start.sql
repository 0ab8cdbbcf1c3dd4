-- runs_start (AFTER INSERT, per statement, with the inserted rows as a transition table)
-- creates the step rows of all inserted workflow-mode runs set-wise and dispatches their root
-- steps, and queues the job of each legacy-mode run, so a bulk INSERT ... SELECT of thousands
-- of runs is a handful of statements, not thousands. A root step whose condition the run input
-- does not meet is skipped at once, and settled (0515_step_wanted.sql).
--
-- It runs with enable_seqscan = off: every row it reads is found by key, and the foreign-key
-- check of each step row inserted (step_runs.run_id -> runs, a plan Postgres prepares once per
-- session) must look the run up by its key too. Planned while runs was nearly empty (after a
-- TRUNCATE, on a fresh install), that check scanned every run inserted so far for each of the
-- 100,000 step rows of a 20,000-run INSERT: 80 s in the check alone, 2 s with the key.
CREATE FUNCTION qflow.runs_start()
RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    v_ids    bigint[];
    v_legacy bigint[];
    v_ones   integer[];
    v_prios  smallint[];
    v_skip   record;
    v_fork   record;
BEGIN
    WITH made AS (
        INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority, finished_at)
        SELECT r.id, s.name, r.workflow, r.version, x.status, s.dep_count, r.priority,
               CASE WHEN x.status = 'skipped' THEN now() END
          FROM new_runs r
          JOIN qflow.steps s ON s.workflow = r.workflow AND s.version = r.version
         CROSS JOIN LATERAL (SELECT CASE WHEN s.dep_count > 0 THEN 'waiting'
                                         WHEN s.condition IS NULL OR jsonb_build_object('input', r.input) @> s.condition THEN 'ready'
                                         ELSE 'skipped' END AS status) x
         WHERE r.mode = 'workflow' AND r.forked_from IS NULL
        RETURNING step_runs.run_id, step_runs.step, step_runs.workflow, step_runs.version, step_runs.status
    )
    SELECT array_agg(m.run_id) AS runs, array_agg(m.step) AS steps, array_agg(m.workflow) AS flows,
           array_agg(m.version) AS versions, array_agg(true) AS skipped
      INTO v_skip
      FROM made m
     WHERE m.status = 'skipped';
    IF v_skip.runs IS NOT NULL THEN
        PERFORM qflow.settle_steps(v_skip.runs, v_skip.steps, v_skip.flows, v_skip.versions, v_skip.skipped);
    END IF;
    -- Forks (one at a time: rerun_from inserts them) reuse their source's outputs.
    FOR v_fork IN SELECT r.id, r.forked_from, r.forked_step FROM new_runs r WHERE r.forked_from IS NOT NULL LOOP
        PERFORM qflow.fork_steps(v_fork.id, v_fork.forked_from, v_fork.forked_step);
    END LOOP;

    -- Maps and cached steps among the roots (0518_prepare_steps.sql).
    IF EXISTS (SELECT 1 FROM new_runs r
                 JOIN qflow.steps s ON s.workflow = r.workflow AND s.version = r.version
                WHERE r.mode = 'workflow' AND (s.map_over IS NOT NULL OR s.cache_ttl_ms IS NOT NULL)) THEN
        PERFORM qflow.prepare_steps(ARRAY(SELECT id FROM new_runs WHERE mode = 'workflow'));
    END IF;

    SELECT array_agg(id) FILTER (WHERE mode = 'workflow'),
           array_agg(id) FILTER (WHERE mode = 'legacy'),
           array_agg(1) FILTER (WHERE mode = 'legacy'),
           array_agg(priority) FILTER (WHERE mode = 'legacy')
      INTO v_ids, v_legacy, v_ones, v_prios
      FROM new_runs;
    PERFORM qflow.enqueue_legacy(v_legacy, v_ones, v_prios);
    IF v_ids IS NOT NULL THEN
        PERFORM qflow.dispatch(v_ids);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_start AFTER INSERT ON qflow.runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION qflow.runs_start();
