-- Operations on whole runs and the periodic sweep.

-- cancel_run stops a live run; false when it had already finished.
CREATE FUNCTION qflow.cancel_run(p_run_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN qflow.finish_run(p_run_id, 'cancelled', 'cancelled by request');
END $$;

-- retry_run re-runs a failed, cancelled or timed-out run: only its steps that failed or were
-- cancelled run again, each with a fresh retry budget; succeeded and skipped steps keep
-- their outputs. A legacy run starts its single job again.
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

    IF v_run.mode = 'legacy' THEN
        UPDATE qflow.runs
           SET status = 'pending', error = NULL, output = NULL, finished_at = NULL, started_at = NULL,
               deadline = now() + v_timeout * interval '1 millisecond'
         WHERE id = p_run_id;
        INSERT INTO river.river_job (args, kind, max_attempts, queue, priority)
        VALUES (jsonb_build_object('run_id', p_run_id, 'attempt', v_run.attempt + 1), 'qflow_legacy', 1, 'cpu', v_run.priority);
        PERFORM qflow.notify_queues('{cpu}');
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

    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;

-- release_step gives a step back without counting a failure: the worker is shutting down
-- and stopped the handler. The attempt is recorded as cancelled and the step is queued again
-- for another worker.
CREATE FUNCTION qflow.release_step(p_run_id bigint, p_step text, p_attempt integer, p_reason text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    UPDATE qflow.step_runs
       SET status = 'ready', lease_expires_at = NULL, started_at = NULL, next_attempt_at = NULL,
           first_attempt = first_attempt + 1
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE qflow.step_attempts SET status = 'cancelled', error = p_reason, finished_at = now()
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt;
    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;

-- sweep is run every second by the leader worker. It times out runs past their deadline,
-- retries steps whose lease expired (their worker died or lost the database), and hands out
-- concurrency slots that nobody handed on. It commits after each run it touches, so it never
-- holds many run locks at once (and cannot deadlock with workers), and reports its counts.
CREATE PROCEDURE qflow.sweep(INOUT timed_out_runs integer DEFAULT 0, INOUT expired_leases integer DEFAULT 0,
                             INOUT requeued_steps integer DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_row record;
BEGIN
    timed_out_runs := 0;
    expired_leases := 0;
    requeued_steps := 0;
    FOR v_row IN
        SELECT id, deadline - created_at AS budget FROM qflow.runs
         WHERE status IN ('pending', 'running') AND deadline < now()
         ORDER BY id LIMIT 1000
    LOOP
        IF qflow.finish_run(v_row.id, 'timed_out', format('run exceeded its deadline (%s)', v_row.budget)) THEN
            timed_out_runs := timed_out_runs + 1;
        END IF;
        COMMIT;
    END LOOP;

    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt, sr.job_id, sr.worker FROM qflow.step_runs sr
         WHERE sr.status = 'running' AND sr.lease_expires_at < now()
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.fail_step(v_row.run_id, v_row.step, v_row.attempt,
                           format('lease expired: worker %s stopped without finishing the step', v_row.worker),
                           false, true) <> 'stale' THEN
            expired_leases := expired_leases + 1;
            -- Its worker is gone; River must not rescue and run the old job again.
            UPDATE river.river_job SET state = 'cancelled', finalized_at = now()
             WHERE id = v_row.job_id AND state = 'running';
        END IF;
        COMMIT;
    END LOOP;

    -- Queued steps whose job can no longer run them: the job is gone or finalized (River
    -- discarded it after an infrastructure error), or a worker fetched it and died before
    -- claiming (a claim follows a fetch within milliseconds). They are queued again.
    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt, sr.job_id FROM qflow.step_runs sr
          LEFT JOIN river.river_job j ON j.id = sr.job_id
         WHERE sr.status = 'queued'
           AND (j.id IS NULL
                OR j.state NOT IN ('available', 'scheduled', 'retryable', 'running', 'pending')
                OR (j.state = 'running' AND j.attempted_at < now() - interval '30 seconds'))
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        PERFORM 1 FROM qflow.runs WHERE id = v_row.run_id FOR UPDATE;
        UPDATE qflow.step_runs SET status = 'ready'
         WHERE run_id = v_row.run_id AND step = v_row.step AND attempt = v_row.attempt AND status = 'queued';
        IF FOUND THEN
            UPDATE river.river_job SET state = 'cancelled', finalized_at = now()
             WHERE id = v_row.job_id AND state = 'running';
            PERFORM qflow.dispatch(ARRAY[v_row.run_id]);
            requeued_steps := requeued_steps + 1;
        END IF;
        COMMIT;
    END LOOP;

    FOR v_row IN
        SELECT DISTINCT sr.workflow, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.status = 'ready' AND s.max_concurrency IS NOT NULL
    LOOP
        PERFORM qflow.notify_queues(qflow.dispatch_limited(v_row.workflow, v_row.step));
        COMMIT;
    END LOOP;

    DELETE FROM qflow.workers WHERE last_seen_at < now() - interval '1 hour';
END $$;
