-- dispatch: ready steps become queued River jobs.
--
-- A job row is {run_id, step, attempt} of kind qflow_step in the queue named by the step's
-- worker class. A retried step carries next_attempt_at; its job is inserted as available with
-- a future scheduled_at, which River's fetch honours. Steps with a max_concurrency go through
-- dispatch_limited, which counts the step's queued and running rows across every run and
-- worker under one lock per (workflow, step), so the limit holds fleet-wide.
-- Each queue that got work is woken with one notification on River's insert channel
-- (Postgres folds identical notifications within a transaction).

-- notify_queues wakes River producers listening on the given queues. (plpgsql rather than
-- SQL functions throughout: plpgsql caches its plans per connection, SQL functions that are
-- not inlined are planned on every call, which on the hot path costs more than the work.)
CREATE FUNCTION qflow.notify_queues(p_queues text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    IF p_queues IS NULL OR cardinality(p_queues) = 0 THEN
        RETURN;
    END IF;
    FOR v_queue IN SELECT DISTINCT q FROM unnest(p_queues) q WHERE q IS NOT NULL LOOP
        PERFORM pg_notify('river.river_insert', '{"queue": "' || v_queue || '"}');
    END LOOP;
END $$;

-- enqueue inserts one River job per given step row (already locked by the caller and ready)
-- and marks the rows queued. Returns the queues that got work.
CREATE FUNCTION qflow.enqueue(p_run_ids bigint[], p_steps text[])
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_queues text[];
BEGIN
    IF p_run_ids IS NULL THEN
        RETURN '{}';
    END IF;
    WITH picked AS (
        SELECT sr.run_id, sr.step, sr.attempt + 1 AS attempt, sr.priority, sr.next_attempt_at, s.worker_class
          FROM unnest(p_run_ids, p_steps) AS k(run_id, step)
          JOIN qflow.step_runs sr ON sr.run_id = k.run_id AND sr.step = k.step
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.status = 'ready'
    ), jobs AS (
        INSERT INTO river.river_job (args, kind, max_attempts, queue, priority, scheduled_at)
        SELECT jsonb_build_object('run_id', run_id, 'step', step, 'attempt', attempt),
               'qflow_step', 1, worker_class, priority, greatest(now(), coalesce(next_attempt_at, now()))
          FROM picked
        RETURNING id, args, queue
    ), queued AS (
        UPDATE qflow.step_runs sr
           SET status = 'queued', attempt = (j.args ->> 'attempt')::integer, job_id = j.id, queued_at = now()
          FROM jobs j
         WHERE sr.run_id = (j.args ->> 'run_id')::bigint AND sr.step = j.args ->> 'step'
        RETURNING j.queue
    )
    SELECT coalesce(array_agg(DISTINCT queue), '{}') INTO v_queues FROM queued;
    RETURN v_queues;
END $$;

-- dispatch_limited hands free slots of one concurrency-limited step to its ready rows,
-- highest priority and oldest run first, across all runs. Returns the queues it filled.
CREATE FUNCTION qflow.dispatch_limited(p_workflow text, p_step text)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_limit integer;
    v_busy  integer;
    v_runs  bigint[];
    v_steps text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.limit:' || p_workflow || '.' || p_step, 0));

    -- The current version's limit governs every version's rows of the step.
    SELECT max_concurrency INTO v_limit
      FROM qflow.steps WHERE workflow = p_workflow AND name = p_step
     ORDER BY version DESC LIMIT 1;

    -- A separate statement after the lock: it sees everything committed by the lock's last holder.
    SELECT count(*) INTO v_busy
      FROM qflow.step_runs
     WHERE workflow = p_workflow AND step = p_step AND status IN ('queued', 'running');

    IF v_limit IS NOT NULL AND v_busy >= v_limit THEN
        RETURN '{}';
    END IF;

    SELECT array_agg(run_id), array_agg(step) INTO v_runs, v_steps
      FROM (SELECT sr.run_id, sr.step
              FROM qflow.step_runs sr
             WHERE sr.workflow = p_workflow AND sr.step = p_step AND sr.status = 'ready'
             ORDER BY sr.priority, sr.run_id
             LIMIT CASE WHEN v_limit IS NULL THEN NULL ELSE v_limit - v_busy END
               FOR UPDATE SKIP LOCKED) free;

    RETURN qflow.enqueue(v_runs, v_steps);
END $$;

-- dispatch queues every ready step of the given runs.
CREATE FUNCTION qflow.dispatch(p_run_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_queues text[];
    v_runs   bigint[];
    v_steps  text[];
    v_group  record;
BEGIN
    SELECT array_agg(sr.run_id), array_agg(sr.step) INTO v_runs, v_steps
      FROM qflow.step_runs sr
      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
     WHERE sr.run_id = ANY (p_run_ids) AND sr.status = 'ready' AND s.max_concurrency IS NULL;
    v_queues := qflow.enqueue(v_runs, v_steps);

    -- Limit locks are always taken in (workflow, topological position) order, here and in
    -- finish_run and settle_step, so two transactions can never wait on each other's.
    FOR v_group IN
        SELECT DISTINCT sr.workflow, s.position, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.run_id = ANY (p_run_ids) AND sr.status = 'ready' AND s.max_concurrency IS NOT NULL
         ORDER BY 1, 2
    LOOP
        v_queues := v_queues || qflow.dispatch_limited(v_group.workflow, v_group.step);
    END LOOP;

    PERFORM qflow.notify_queues(v_queues);
END $$;
