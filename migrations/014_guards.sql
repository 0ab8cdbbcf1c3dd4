-- Guards: what no statement may write, whoever issues it (psql, a script, a bug).
--
-- The procedures move runs and steps along the state machine; the guards below make every
-- other move unwritable. They sit on the hot path, so a trigger's WHEN clause lists the moves
-- the procedures make, as plain comparisons evaluated without calling anything; the guard
-- function runs only to reject a move, or for the one move that needs more than the row: a
-- finished run or step coming back to life, which only qflow.retry_run may do.
--
-- Runs:   pending -> running | failed | cancelled | timed_out
--         running -> succeeded | failed | cancelled | timed_out | pending (legacy retry)
--         failed | cancelled | timed_out -> running (workflow) | pending (legacy)   retry_run only
--         a run never changes mode; succeeded is final.
-- Steps:  inserted as waiting or ready
--         waiting -> ready | cancelled
--         ready   -> queued | cancelled
--         queued  -> running | ready (job lost) | cancelled
--         running -> succeeded | failed | skipped | ready (retry, release) | cancelled
--         failed | cancelled -> waiting   retry_run only; succeeded and skipped are final.
-- Attempts: running -> succeeded | failed | timed_out | cancelled; a finished attempt is history.
--
-- Also here: the largest run input accepted (qflow.settings), and the schema version a worker
-- checks before it starts.

-- Settings ----------------------------------------------------------------------------------

-- Operator settings of the engine, one row per setting, changed with a plain UPDATE.
CREATE TABLE qflow.settings (
    key         text        PRIMARY KEY CHECK (key IN ('max_input_bytes')),
    value       bigint      NOT NULL,
    description text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- jsonb itself stops at 256 MiB.
    CHECK (key <> 'max_input_bytes' OR value BETWEEN 2 AND 268435456)
);

INSERT INTO qflow.settings (key, value, description)
VALUES ('max_input_bytes', 1048576, 'the largest run input accepted, in bytes of its JSON text');

-- runs_prepare (004) with the input size check: a run input is read by every step of the run,
-- so an oversized one is refused at the door, before anything is written.
CREATE OR REPLACE FUNCTION qflow.runs_prepare()
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

-- Status guards -----------------------------------------------------------------------------

CREATE FUNCTION qflow.runs_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.mode IS DISTINCT FROM NEW.mode THEN
        RAISE EXCEPTION 'qflow: run % cannot change mode from % to %', OLD.id, OLD.mode, NEW.mode
            USING ERRCODE = 'check_violation',
                  HINT = 'a run keeps the mode it started in; qflow.rollouts decides the mode of new runs';
    END IF;
    IF OLD.status IN ('failed', 'cancelled', 'timed_out')
       AND ((NEW.mode = 'workflow' AND NEW.status = 'running') OR (NEW.mode = 'legacy' AND NEW.status = 'pending'))
       AND current_setting('qflow.retrying', true) = NEW.id::text THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'qflow: run % cannot go from % to %', OLD.id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation',
              HINT = CASE WHEN OLD.status IN ('failed', 'cancelled', 'timed_out')
                          THEN format('SELECT qflow.retry_run(%s) runs it again', OLD.id)
                          WHEN OLD.status = 'succeeded' THEN 'a succeeded run is final'
                          ELSE 'qflow.cancel_run stops a live run' END;
END $$;

CREATE TRIGGER runs_guard BEFORE UPDATE ON qflow.runs
    FOR EACH ROW
    WHEN (OLD.mode IS DISTINCT FROM NEW.mode
          OR (OLD.status IS DISTINCT FROM NEW.status AND NOT (
                 (OLD.status = 'pending' AND NEW.status IN ('running', 'failed', 'cancelled', 'timed_out'))
              OR (OLD.status = 'running' AND NEW.status IN ('succeeded', 'failed', 'cancelled', 'timed_out'))
              OR (OLD.status = 'running' AND NEW.status = 'pending' AND NEW.mode = 'legacy'))))
    EXECUTE FUNCTION qflow.runs_guard();

CREATE FUNCTION qflow.step_runs_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'qflow: step % of run % cannot start as %', NEW.step, NEW.run_id, NEW.status
            USING ERRCODE = 'check_violation',
                  HINT = 'step rows are created waiting or ready by the run''s start';
    END IF;
    IF OLD.status IN ('failed', 'cancelled') AND NEW.status = 'waiting'
       AND current_setting('qflow.retrying', true) = NEW.run_id::text THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'qflow: step % of run % cannot go from % to %', OLD.step, OLD.run_id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation',
              HINT = CASE WHEN OLD.status IN ('failed', 'cancelled')
                          THEN format('SELECT qflow.retry_run(%s) runs failed and cancelled steps again', OLD.run_id)
                          WHEN OLD.status IN ('succeeded', 'skipped') THEN format('a %s step is final', OLD.status)
                          ELSE 'steps move waiting -> ready -> queued -> running -> succeeded | failed | skipped' END;
END $$;

CREATE TRIGGER step_runs_start_guard BEFORE INSERT ON qflow.step_runs
    FOR EACH ROW
    WHEN (NEW.status NOT IN ('waiting', 'ready'))
    EXECUTE FUNCTION qflow.step_runs_guard();

CREATE TRIGGER step_runs_guard BEFORE UPDATE ON qflow.step_runs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NOT (
             (OLD.status = 'waiting' AND NEW.status IN ('ready', 'cancelled'))
          OR (OLD.status = 'ready' AND NEW.status IN ('queued', 'cancelled'))
          OR (OLD.status = 'queued' AND NEW.status IN ('running', 'ready', 'cancelled'))
          OR (OLD.status = 'running' AND NEW.status IN ('succeeded', 'failed', 'skipped', 'ready', 'cancelled'))))
    EXECUTE FUNCTION qflow.step_runs_guard();

CREATE FUNCTION qflow.step_attempts_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qflow: attempt % of step % of run % is % and cannot become %',
                    OLD.attempt, OLD.step, OLD.run_id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation', HINT = 'a finished attempt is history';
END $$;

CREATE TRIGGER step_attempts_guard BEFORE UPDATE ON qflow.step_attempts
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND OLD.status <> 'running')
    EXECUTE FUNCTION qflow.step_attempts_guard();

-- retry_run (007), unchanged but for the transaction-local setting that tells the guards a
-- finished run and its steps are coming back to life on purpose.
CREATE OR REPLACE FUNCTION qflow.retry_run(p_run_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_run qflow.runs;
    v_timeout bigint;
BEGIN
    SELECT * INTO v_run FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF v_run.status NOT IN ('failed', 'cancelled', 'timed_out') THEN
        RAISE EXCEPTION 'qflow: run % is %: only failed, cancelled or timed-out runs can be retried', p_run_id, v_run.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT timeout_ms INTO v_timeout FROM qflow.workflows WHERE name = v_run.workflow AND version = v_run.version;
    PERFORM set_config('qflow.retrying', p_run_id::text, true);

    IF v_run.mode = 'legacy' THEN
        UPDATE qflow.runs
           SET status = 'pending', error = NULL, output = NULL, finished_at = NULL, started_at = NULL,
               deadline = now() + v_timeout * interval '1 millisecond'
         WHERE id = p_run_id;
        INSERT INTO river.river_job (args, kind, max_attempts, queue, priority)
        VALUES (jsonb_build_object('run_id', p_run_id, 'attempt', v_run.attempt + 1), 'qflow_legacy', 1, 'cpu', v_run.priority);
        PERFORM qflow.notify_queues('{cpu}');
        PERFORM set_config('qflow.retrying', '', true);
        RETURN true;
    END IF;

    UPDATE qflow.step_runs sr
       SET status = 'waiting', error = NULL, output = NULL, finished_at = NULL, started_at = NULL, queued_at = NULL,
           next_attempt_at = NULL, lease_expires_at = NULL, first_attempt = sr.attempt + 1,
           remaining_deps = (SELECT count(*)
                               FROM qflow.step_deps d
                               JOIN qflow.step_runs dep ON dep.run_id = sr.run_id AND dep.step = d.depends_on
                              WHERE d.workflow = sr.workflow AND d.version = sr.version AND d.step = sr.step
                                AND dep.status NOT IN ('succeeded', 'skipped'))
     WHERE sr.run_id = p_run_id AND sr.status IN ('failed', 'cancelled');
    UPDATE qflow.step_runs SET status = 'ready'
     WHERE run_id = p_run_id AND status = 'waiting' AND remaining_deps = 0;

    UPDATE qflow.runs
       SET status = 'running', error = NULL, output = NULL, finished_at = NULL,
           deadline = now() + v_timeout * interval '1 millisecond',
           remaining_steps = (SELECT count(*) FROM qflow.step_runs
                               WHERE run_id = p_run_id AND status NOT IN ('succeeded', 'skipped'))
     WHERE id = p_run_id;
    PERFORM set_config('qflow.retrying', '', true);

    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;

-- finish_run (006), with the step rows stopped before the attempts. claim_step does not lock
-- the run: a claim that holds its step row while the run finishes commits its attempt after
-- an UPDATE of attempts taken first has already looked, which left that attempt running in a
-- finished run forever (the chaos test found a few in thousands of runs). The step rows are
-- updated first now, waiting for such a claim; the attempts' UPDATE, a later statement, then
-- sees its attempt.
CREATE OR REPLACE FUNCTION qflow.finish_run(p_run_id bigint, p_status text, p_error text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_group record;
    v_queues text[] := '{}';
BEGIN
    UPDATE qflow.runs r
       SET status = p_status, finished_at = now(), error = p_error,
           remaining_steps = CASE WHEN p_status = 'succeeded' THEN 0 ELSE r.remaining_steps END,
           output = CASE WHEN p_status <> 'succeeded' THEN NULL
                         WHEN r.mode = 'legacy' THEN r.output
                         ELSE (SELECT coalesce(jsonb_object_agg(sr.step, sr.output), '{}')
                                 FROM qflow.step_runs sr
                                 JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
                                WHERE sr.run_id = r.id AND s.is_leaf AND sr.status = 'succeeded')
                    END
     WHERE r.id = p_run_id AND r.status IN ('pending', 'running');
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    WITH stopped AS (
        UPDATE qflow.step_runs
           SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL
         WHERE run_id = p_run_id AND status IN ('waiting', 'ready', 'queued', 'running')
        RETURNING job_id
    )
    UPDATE river.river_job j
       SET state = 'cancelled', finalized_at = now()
      FROM stopped
     WHERE j.id = stopped.job_id AND j.state IN ('available', 'scheduled', 'retryable', 'pending');

    UPDATE qflow.step_attempts
       SET status = 'cancelled', finished_at = now(), error = coalesce(error, format('run %s', p_status))
     WHERE run_id = p_run_id AND status = 'running';

    -- Legacy runs have one job and no step rows.
    UPDATE river.river_job j
       SET state = 'cancelled', finalized_at = now()
     WHERE j.kind = 'qflow_legacy' AND j.state IN ('available', 'scheduled', 'retryable')
       AND (j.args ->> 'run_id')::bigint = p_run_id
       AND EXISTS (SELECT 1 FROM qflow.runs r WHERE r.id = p_run_id AND r.mode = 'legacy');

    -- A succeeded run freed nothing here: settle_step already handed its last slot on.
    FOR v_group IN
        SELECT sr.workflow, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.run_id = p_run_id AND s.max_concurrency IS NOT NULL AND p_status <> 'succeeded'
         ORDER BY s.position
    LOOP
        v_queues := v_queues || qflow.dispatch_limited(v_group.workflow, v_group.step);
    END LOOP;
    PERFORM qflow.notify_queues(v_queues);
    RETURN true;
END $$;

-- Invariants the procedures always kept, now stated where nothing can break them.
ALTER TABLE qflow.runs
    ADD CONSTRAINT runs_running_has_started CHECK (status <> 'running' OR started_at IS NOT NULL);
ALTER TABLE qflow.step_runs
    ADD CONSTRAINT step_runs_succeeded_has_output CHECK (status <> 'succeeded' OR output IS NOT NULL),
    ADD CONSTRAINT step_runs_dispatched_has_attempt
        CHECK (status NOT IN ('queued', 'running', 'succeeded', 'failed', 'skipped') OR attempt >= 1),
    ADD CONSTRAINT step_runs_running_has_started CHECK (status <> 'running' OR started_at IS NOT NULL);

-- Schema version ----------------------------------------------------------------------------

-- tern's own version table, created by tern before the first migration (so this statement
-- never does anything), declared here so that sqlc knows its shape: a worker reads it to
-- refuse a database migrated by an older or newer binary (sql/security.sql).
CREATE TABLE IF NOT EXISTS qflow.schema_version (version integer NOT NULL);
