-- Run start: a plain INSERT into qflow.runs starts a run.
--
-- runs_prepare (BEFORE, per row) validates the row, pins the workflow's current version,
-- chooses the mode and owns every runtime column, so an INSERT cannot forge a status.
-- runs_start (AFTER, per statement, with the inserted rows as a transition table) creates the
-- step rows of all inserted runs set-wise and dispatches their root steps, so a bulk
-- INSERT ... SELECT of thousands of runs is a handful of statements, not thousands.

-- run_mode is the stable canary split: a run's id decides its mode once and for all. The
-- multiplier is coprime with 100, so any 100 consecutive ids split exactly.
CREATE FUNCTION qflow.run_mode(p_workflow text, p_run_id bigint)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_rollout qflow.rollouts;
BEGIN
    SELECT * INTO v_rollout FROM qflow.rollouts WHERE workflow = p_workflow;
    IF NOT FOUND THEN
        RETURN 'workflow';
    ELSIF NOT v_rollout.enabled THEN
        RETURN 'legacy';
    ELSIF mod(p_run_id * 7919, 100) < v_rollout.canary_percent THEN
        RETURN 'workflow';
    END IF;
    RETURN 'legacy';
END $$;

CREATE FUNCTION qflow.runs_prepare()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_wf qflow.workflows;
BEGIN
    IF NEW.version IS NULL THEN
        SELECT * INTO v_wf FROM qflow.workflows WHERE name = NEW.workflow ORDER BY version DESC LIMIT 1;
    ELSE
        SELECT * INTO v_wf FROM qflow.workflows WHERE name = NEW.workflow AND version = NEW.version;
    END IF;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM qflow.workflows WHERE name = NEW.workflow) THEN
            RAISE EXCEPTION 'qflow: workflow "%" has no version %', NEW.workflow, NEW.version
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'qflow: unknown workflow "%"', NEW.workflow
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'SELECT name FROM qflow.list_workflows() shows the registered workflows';
    END IF;
    IF NEW.input IS NULL THEN
        NEW.input := '{}';
    ELSIF jsonb_typeof(NEW.input) <> 'object' THEN
        RAISE EXCEPTION 'qflow: run input must be a JSON object, got %', jsonb_typeof(NEW.input)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    NEW.version := v_wf.version;
    IF NEW.mode IS NULL THEN
        NEW.mode := qflow.run_mode(NEW.workflow, NEW.id);
    END IF;
    NEW.priority := coalesce(NEW.priority, 2);
    NEW.created_at := now();
    NEW.deadline := now() + v_wf.timeout_ms * interval '1 millisecond';
    NEW.output := NULL;
    NEW.error := NULL;
    NEW.finished_at := NULL;
    NEW.attempt := 0;
    IF NEW.mode = 'workflow' THEN
        NEW.status := 'running';
        NEW.started_at := now();
        SELECT count(*) INTO NEW.remaining_steps FROM qflow.steps WHERE workflow = NEW.workflow AND version = NEW.version;
    ELSE
        -- A legacy run starts when its job is picked up.
        NEW.status := 'pending';
        NEW.started_at := NULL;
        NEW.remaining_steps := 0;
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION qflow.runs_start()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority)
    SELECT r.id, s.name, r.workflow, r.version,
           CASE WHEN s.dep_count = 0 THEN 'ready' ELSE 'waiting' END, s.dep_count, r.priority
      FROM new_runs r
      JOIN qflow.steps s ON s.workflow = r.workflow AND s.version = r.version
     WHERE r.mode = 'workflow';

    INSERT INTO river.river_job (args, kind, max_attempts, queue, priority)
    SELECT jsonb_build_object('run_id', r.id, 'attempt', 1), 'qflow_legacy', 1, 'cpu', r.priority
      FROM new_runs r
     WHERE r.mode = 'legacy';
    IF FOUND THEN
        PERFORM qflow.notify_queues('{cpu}');
    END IF;

    SELECT array_agg(id) INTO v_ids FROM new_runs WHERE mode = 'workflow';
    IF v_ids IS NOT NULL THEN
        PERFORM qflow.dispatch(v_ids);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_prepare BEFORE INSERT ON qflow.runs
    FOR EACH ROW EXECUTE FUNCTION qflow.runs_prepare();

CREATE TRIGGER runs_start AFTER INSERT ON qflow.runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION qflow.runs_start();

-- start_run is the function form of the INSERT. With an idempotency key that was used
-- before, it starts nothing and returns the earlier run's id.
CREATE FUNCTION qflow.start_run(p_workflow text, p_input jsonb DEFAULT '{}', p_idempotency_key text DEFAULT NULL,
                                p_priority smallint DEFAULT 2)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO qflow.runs (workflow, input, idempotency_key, priority)
    VALUES (p_workflow, coalesce(p_input, '{}'), p_idempotency_key, p_priority)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM qflow.runs WHERE idempotency_key = p_idempotency_key;
    END IF;
    RETURN v_id;
END $$;
