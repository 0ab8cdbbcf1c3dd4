-- complete_step and fail_step: the two ways an attempt ends. The worker calls them in the same
-- transaction as River's JobCompleteTx, so a step's result and its job's completion commit
-- together or not at all.
--
-- Lock order, everywhere: the run row first, then its step rows. Every transition of a run's
-- steps serialises on the run row, which keeps the counters exact and deadlocks away.
-- Only the attempt that is running may end it: a late or repeated completion changes nothing
-- and returns false / 'stale'.

-- finish_run moves a live run to a terminal status and stops its remaining work: steps not
-- yet finished are cancelled, their River jobs that have not started are cancelled, and slots
-- they held under a concurrency limit go to other runs.
CREATE FUNCTION qflow.finish_run(p_run_id bigint, p_status text, p_error text)
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

    UPDATE qflow.step_attempts
       SET status = 'cancelled', finished_at = now(), error = coalesce(error, format('run %s', p_status))
     WHERE run_id = p_run_id AND status = 'running';

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

-- settle_step counts a step that reached succeeded or skipped: its successors lose one
-- pending dependency (and become ready at zero), the run loses one remaining step (and
-- succeeds at zero), ready work is dispatched, and a freed concurrency slot is handed on.
CREATE FUNCTION qflow.settle_step(p_sr qflow.step_runs)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_remaining integer;
    v_limited boolean;
BEGIN
    UPDATE qflow.step_runs succ
       SET remaining_deps = succ.remaining_deps - 1,
           status = CASE WHEN succ.remaining_deps = 1 THEN 'ready' ELSE 'waiting' END
      FROM qflow.step_deps d
     WHERE d.workflow = p_sr.workflow AND d.version = p_sr.version AND d.depends_on = p_sr.step
       AND succ.run_id = p_sr.run_id AND succ.step = d.step AND succ.status = 'waiting';

    UPDATE qflow.runs SET remaining_steps = remaining_steps - 1
     WHERE id = p_sr.run_id
    RETURNING remaining_steps INTO v_remaining;

    -- The freed slot first: its lock comes before the successors' in topological order.
    SELECT max_concurrency IS NOT NULL INTO v_limited
      FROM qflow.steps WHERE workflow = p_sr.workflow AND version = p_sr.version AND name = p_sr.step;
    IF v_limited THEN
        PERFORM qflow.notify_queues(qflow.dispatch_limited(p_sr.workflow, p_sr.step));
    END IF;

    IF v_remaining = 0 THEN
        PERFORM qflow.finish_run(p_sr.run_id, 'succeeded', NULL);
    ELSE
        PERFORM qflow.dispatch(ARRAY[p_sr.run_id]);
    END IF;
END $$;

CREATE FUNCTION qflow.complete_step(p_run_id bigint, p_step text, p_attempt integer, p_output jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;

    UPDATE qflow.step_runs
       SET status = 'succeeded', output = coalesce(p_output, 'null'), error = NULL,
           finished_at = now(), lease_expires_at = NULL
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'running'
    RETURNING * INTO v_sr;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    UPDATE qflow.step_attempts SET status = 'succeeded', finished_at = now()
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt;

    PERFORM qflow.settle_step(v_sr);
    RETURN true;
END $$;

-- retry_delay is the backoff before attempt n+1 after n failures counted in the budget:
-- min(max, base * 2^(n-1)), with "equal jitter" (half fixed, half random) so that retries of
-- many runs spread out but never come sooner than half the nominal delay.
CREATE FUNCTION qflow.retry_delay(p_base_ms bigint, p_max_ms bigint, p_failures integer)
RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT (d / 2 + random() * d / 2) * interval '1 millisecond'
      FROM (SELECT least(p_max_ms::double precision, p_base_ms * power(2, greatest(p_failures, 1) - 1)) AS d) x;
$$;

-- fail_step ends an attempt with an error. Returns what happened: 'retry' (another attempt is
-- scheduled), 'skipped' (the step allows it; successors go on), 'failed' (the run failed and
-- its other work was cancelled) or 'stale' (that attempt was not running: nothing changed).
CREATE FUNCTION qflow.fail_step(p_run_id bigint, p_step text, p_attempt integer, p_error text,
                                p_permanent boolean DEFAULT false, p_timed_out boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
    v_s  qflow.steps;
    v_failures integer;
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;

    SELECT * INTO v_sr FROM qflow.step_runs
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'running';
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;
    SELECT * INTO v_s FROM qflow.steps WHERE workflow = v_sr.workflow AND version = v_sr.version AND name = v_sr.step;

    UPDATE qflow.step_attempts
       SET status = CASE WHEN p_timed_out THEN 'timed_out' ELSE 'failed' END, error = p_error, finished_at = now()
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt;

    v_failures := p_attempt - v_sr.first_attempt + 1;
    IF NOT p_permanent AND v_failures < v_s.max_attempts THEN
        UPDATE qflow.step_runs
           SET status = 'ready', error = p_error, lease_expires_at = NULL, started_at = NULL,
               next_attempt_at = now() + qflow.retry_delay(v_s.retry_base_ms, v_s.retry_max_ms, v_failures)
         WHERE run_id = p_run_id AND step = p_step;
        -- Under a concurrency limit the retry competes for a slot again like any ready row.
        PERFORM qflow.dispatch(ARRAY[p_run_id]);
        RETURN 'retry';
    END IF;

    IF v_s.on_failure = 'skip' THEN
        UPDATE qflow.step_runs
           SET status = 'skipped', error = p_error, lease_expires_at = NULL, finished_at = now()
         WHERE run_id = p_run_id AND step = p_step
        RETURNING * INTO v_sr;
        PERFORM qflow.settle_step(v_sr);
        RETURN 'skipped';
    END IF;

    UPDATE qflow.step_runs
       SET status = 'failed', error = p_error, lease_expires_at = NULL, finished_at = now()
     WHERE run_id = p_run_id AND step = p_step;
    PERFORM qflow.finish_run(p_run_id, 'failed',
        format('step %s failed%s: %s', p_step,
               CASE WHEN p_permanent THEN ' permanently' ELSE format(' after %s attempt(s)', v_failures) END, p_error));
    RETURN 'failed';
END $$;

-- Likewise for results: the worker sends the results gathered while its previous batch was in
-- flight as one call, one round trip and one commit for many steps.

-- finish_steps records many attempt results and completes their River jobs in the same
-- transaction. Entries are {run_id, step, attempt, job_id, result: "complete" | "fail" |
-- "release", output, error, permanent, timed_out}. Completions, the common case, are applied
-- set-wise with the same rules as complete_step: one statement per rule for the whole batch,
-- not per step. Failures and releases go through fail_step and release_step one by one.
-- The batch's runs are locked first, in id order, as every batch does, so concurrent batches
-- queue behind each other instead of deadlocking.
-- Returns each entry's outcome: 'completed' or 'stale' for a completion, fail_step's outcome
-- for a failure, 'released' or 'stale' for a release.
CREATE FUNCTION qflow.finish_steps(p_results jsonb)
RETURNS TABLE (run_id bigint, step text, attempt integer, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_r        record;
    v_runs     bigint[];   -- the completed steps, as parallel arrays
    v_steps    text[];
    v_attempts integer[];
    v_flows    text[];
    v_versions integer[];
    v_finished bigint[];   -- runs whose last step completed
    v_live     bigint[];   -- runs with steps left
    v_group    record;
    v_queues   text[] := '{}';
    v_id       bigint;
BEGIN
    PERFORM 1 FROM qflow.runs r
     WHERE r.id IN (SELECT DISTINCT (e ->> 'run_id')::bigint FROM jsonb_array_elements(p_results) e)
     ORDER BY r.id
       FOR UPDATE;

    -- A run past its deadline times out here and now, whenever the sweep would have got to it:
    -- a result arriving after the deadline must not let the run succeed.
    FOR v_r IN
        SELECT r.id, r.deadline - r.created_at AS budget
          FROM qflow.runs r
         WHERE r.id IN (SELECT DISTINCT (e ->> 'run_id')::bigint FROM jsonb_array_elements(p_results) e)
           AND r.status IN ('pending', 'running') AND r.deadline < now()
         ORDER BY r.id
    LOOP
        PERFORM qflow.finish_run(v_r.id, 'timed_out', format('run exceeded its deadline (%s)', v_r.budget));
    END LOOP;

    -- Completions: only the attempt that is running may complete its step.
    WITH e AS (
        SELECT * FROM jsonb_to_recordset(p_results) AS x(run_id bigint, step text, attempt integer, result text, output jsonb)
         WHERE x.result = 'complete'
    ), done AS (
        UPDATE qflow.step_runs sr
           SET status = 'succeeded', output = coalesce(e.output, 'null'), error = NULL,
               finished_at = now(), lease_expires_at = NULL
          FROM e
         WHERE sr.run_id = e.run_id AND sr.step = e.step AND sr.attempt = e.attempt AND sr.status = 'running'
        RETURNING sr.run_id, sr.step, sr.attempt, sr.workflow, sr.version
    )
    SELECT array_agg(d.run_id), array_agg(d.step), array_agg(d.attempt), array_agg(d.workflow), array_agg(d.version)
      INTO v_runs, v_steps, v_attempts, v_flows, v_versions
      FROM done d;

    IF v_runs IS NOT NULL THEN
        UPDATE qflow.step_attempts a
           SET status = 'succeeded', finished_at = now()
          FROM unnest(v_runs, v_steps, v_attempts) AS d(run_id, step, attempt)
         WHERE a.run_id = d.run_id AND a.step = d.step AND a.attempt = d.attempt;

        -- Each successor loses one pending dependency per completed dependency.
        UPDATE qflow.step_runs succ
           SET remaining_deps = succ.remaining_deps - x.n,
               status = CASE WHEN succ.remaining_deps = x.n THEN 'ready' ELSE 'waiting' END
          FROM (SELECT d.run_id, dep.step, count(*)::integer AS n
                  FROM unnest(v_runs, v_steps, v_flows, v_versions) AS d(run_id, step, workflow, version)
                  JOIN qflow.step_deps dep ON dep.workflow = d.workflow AND dep.version = d.version AND dep.depends_on = d.step
                 GROUP BY d.run_id, dep.step) x
         WHERE succ.run_id = x.run_id AND succ.step = x.step AND succ.status = 'waiting';

        WITH counted AS (
            UPDATE qflow.runs r
               SET remaining_steps = r.remaining_steps - x.n
              FROM (SELECT d.run_id, count(*)::integer AS n FROM unnest(v_runs) AS d(run_id) GROUP BY d.run_id) x
             WHERE r.id = x.run_id
            RETURNING r.id, r.remaining_steps
        )
        SELECT array_agg(c.id) FILTER (WHERE c.remaining_steps = 0), array_agg(c.id) FILTER (WHERE c.remaining_steps > 0)
          INTO v_finished, v_live
          FROM counted c;

        -- Slots freed under concurrency limits, in (workflow, position) order like every
        -- taker of those locks.
        FOR v_group IN
            SELECT DISTINCT d.workflow, s.position, d.step
              FROM unnest(v_steps, v_flows, v_versions) AS d(step, workflow, version)
              JOIN qflow.steps s ON s.workflow = d.workflow AND s.version = d.version AND s.name = d.step
             WHERE s.max_concurrency IS NOT NULL
             ORDER BY 1, 2
        LOOP
            v_queues := v_queues || qflow.dispatch_limited(v_group.workflow, v_group.step);
        END LOOP;
        PERFORM qflow.notify_queues(v_queues);

        IF v_finished IS NOT NULL THEN
            FOREACH v_id IN ARRAY v_finished LOOP
                PERFORM qflow.finish_run(v_id, 'succeeded', NULL);
            END LOOP;
        END IF;
        IF v_live IS NOT NULL THEN
            PERFORM qflow.dispatch(v_live);
        END IF;
    END IF;

    FOR v_r IN
        SELECT *
          FROM jsonb_to_recordset(p_results) AS x(run_id bigint, step text, attempt integer, result text,
                                                  error text, permanent boolean, timed_out boolean)
         ORDER BY x.run_id, x.step
    LOOP
        run_id := v_r.run_id;
        step := v_r.step;
        attempt := v_r.attempt;
        CASE v_r.result
            WHEN 'complete' THEN
                outcome := CASE WHEN EXISTS (SELECT 1 FROM unnest(v_runs, v_steps, v_attempts) AS d(run_id, step, attempt)
                                              WHERE d.run_id = v_r.run_id AND d.step = v_r.step AND d.attempt = v_r.attempt)
                                THEN 'completed' ELSE 'stale' END;
            WHEN 'fail' THEN
                outcome := qflow.fail_step(v_r.run_id, v_r.step, v_r.attempt, v_r.error,
                                           coalesce(v_r.permanent, false), coalesce(v_r.timed_out, false));
            WHEN 'release' THEN
                outcome := CASE WHEN qflow.release_step(v_r.run_id, v_r.step, v_r.attempt, v_r.error)
                                THEN 'released' ELSE 'stale' END;
            ELSE
                RAISE EXCEPTION 'qflow: finish_steps: unknown result %', quote_literal(v_r.result)
                    USING ERRCODE = 'invalid_parameter_value';
        END CASE;
        RETURN NEXT;
    END LOOP;

    -- The jobs are done whatever the outcome: a retry is a new job.
    UPDATE river.river_job j
       SET state = 'completed', finalized_at = now()
     WHERE j.id IN (SELECT (e ->> 'job_id')::bigint FROM jsonb_array_elements(p_results) e)
       AND j.state = 'running';
END $$;
