-- Run start (this file, 0460_runs_start.sql): a plain INSERT into qflow.runs starts a run.
--
-- runs_prepare (BEFORE, per row) validates the row, pins the workflow's current version,
-- chooses the mode and owns every runtime column, so an INSERT cannot forge a status.
-- runs_start (AFTER, per statement) creates the step rows and dispatches.
--
-- The input size check: a run input is read by every step of the run, so an oversized one is
-- refused at the door, before anything is written (the limit is qflow.settings max_input_bytes).

CREATE FUNCTION qflow.runs_prepare()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_wf    qflow.workflows;
    v_limit bigint;
    v_size  bigint;
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
    SELECT value INTO v_limit FROM qflow.settings WHERE key = 'max_input_bytes';
    v_size := octet_length(NEW.input::text);
    IF v_size > coalesce(v_limit, 1048576) THEN
        RAISE EXCEPTION 'qflow: run input is % bytes, above the limit of % bytes', v_size, coalesce(v_limit, 1048576)
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'pass large data by reference (a table, a URL); the limit is qflow.settings max_input_bytes';
    END IF;

    NEW.version := v_wf.version;
    IF NEW.forked_from IS NOT NULL THEN
        -- A fork reuses step rows; legacy mode has none (0597_rerun_from.sql).
        NEW.mode := 'workflow';
    ELSIF NEW.mode IS NULL THEN
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

CREATE TRIGGER runs_prepare BEFORE INSERT ON qflow.runs
    FOR EACH ROW EXECUTE FUNCTION qflow.runs_prepare();
