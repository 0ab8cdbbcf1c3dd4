-- runs_start (AFTER INSERT, per statement, with the inserted rows as a transition table)
-- creates the step rows of all inserted workflow-mode runs set-wise and dispatches their root
-- steps, and queues the job of each legacy-mode run, so a bulk INSERT ... SELECT of thousands
-- of runs is a handful of statements, not thousands.
CREATE FUNCTION qflow.runs_start()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids    bigint[];
    v_legacy bigint[];
    v_ones   integer[];
    v_prios  smallint[];
BEGIN
    INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority)
    SELECT r.id, s.name, r.workflow, r.version,
           CASE WHEN s.dep_count = 0 THEN 'ready' ELSE 'waiting' END, s.dep_count, r.priority
      FROM new_runs r
      JOIN qflow.steps s ON s.workflow = r.workflow AND s.version = r.version
     WHERE r.mode = 'workflow';

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
