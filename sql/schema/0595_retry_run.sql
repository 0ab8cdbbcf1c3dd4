-- retry_run re-runs a failed, cancelled or timed-out run: only its steps that failed or were
-- cancelled run again, each with a fresh retry budget; succeeded and skipped steps keep
-- their outputs. A map step runs only its elements that failed or were cancelled again (it
-- keeps the outputs of those that succeeded). A legacy run starts its single job again. The transaction-local setting
-- qflow.retrying tells the guards (0480_runs_guard.sql, 0490_step_runs_guard.sql) that a
-- finished run and its steps are coming back to life on purpose.
CREATE FUNCTION qflow.retry_run(p_run_id bigint)
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
        PERFORM qflow.enqueue_legacy(ARRAY[p_run_id], ARRAY[v_run.attempt + 1], ARRAY[v_run.priority]);
        PERFORM set_config('qflow.retrying', '', true);
        RETURN true;
    END IF;

    -- Map steps that were expanded wait for their unfinished elements again.
    UPDATE qflow.step_runs sr
       SET status = 'running', error = NULL, finished_at = NULL, started_at = now(),
           remaining_tasks = (SELECT count(*) FROM qflow.step_runs e
                               WHERE e.run_id = sr.run_id AND e.def_step = sr.step AND e.task IS NOT NULL
                                 AND e.status <> 'succeeded')
     WHERE sr.run_id = p_run_id AND sr.status IN ('failed', 'cancelled') AND sr.tasks IS NOT NULL;

    UPDATE qflow.step_runs sr
       SET status = 'waiting', error = NULL, output = NULL, finished_at = NULL, started_at = NULL, queued_at = NULL,
           next_attempt_at = NULL, lease_expires_at = NULL, first_attempt = sr.attempt + 1,
           remaining_deps = (SELECT count(*)
                               FROM qflow.step_deps d
                               JOIN qflow.step_runs dep ON dep.run_id = sr.run_id AND dep.step = d.depends_on
                              WHERE d.workflow = sr.workflow AND d.version = sr.version AND d.step = sr.step
                                AND dep.status NOT IN ('succeeded', 'skipped'))
     WHERE sr.run_id = p_run_id AND sr.status IN ('failed', 'cancelled') AND sr.tasks IS NULL;
    UPDATE qflow.step_runs SET status = 'ready'
     WHERE run_id = p_run_id AND status = 'waiting' AND remaining_deps = 0;

    UPDATE qflow.runs
       SET status = 'running', error = NULL, output = NULL, finished_at = NULL,
           deadline = now() + v_timeout * interval '1 millisecond',
           remaining_steps = (SELECT count(*) FROM qflow.step_runs
                               WHERE run_id = p_run_id AND status NOT IN ('succeeded', 'skipped') AND task IS NULL)
     WHERE id = p_run_id;
    PERFORM set_config('qflow.retrying', '', true);

    PERFORM qflow.prepare_steps(ARRAY[p_run_id]);
    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;
