-- Eager dispatch: the worker that finishes a step runs the step it made ready.
--
-- Without it, every hop of a run costs three transactions and a wake-up: finish_steps queues
-- the successor's River job and notifies, a producer wakes and fetches it (River's fetch
-- UPDATE), and the worker claims it (claim_steps). A worker sending a completion already has
-- a free slot: the one its finished step held. With eager dispatch it says so ("take": true
-- on the entry), and finish_steps, in the same transaction that records the result, claims
-- one successor of that run made ready by it: inserts its River job already running and
-- attempted by that worker, marks the step running with a lease and an attempt row, and
-- returns the step's input with the result. The worker runs it at once, in the same River
-- slot. The hop then costs one transaction, and the next handler starts when the commit
-- returns.
--
-- Everything else is as for a fetched job: the job is completed with the step's result, a
-- worker that dies mid-step loses its lease and the sweep retries the step and cancels the
-- job, a cancelled run makes the result stale. Eager dispatch takes only what a queue would
-- have handed this worker anyway:
--   - a step of a worker class the worker serves,
--   - with no max_concurrency (limited steps wait for their slot in dispatch_limited),
--   - whose retry backoff (next_attempt_at) has passed,
--   - in a run none of whose other results in the batch failed or was released,
--   - and only while no job of a higher priority (a lower number) waits in that queue.
-- A run's other ready steps (a fan-out) are queued as before, for any worker. Among equal
-- priorities a run in progress goes before runs that have not started (depth first), which
-- shortens runs and changes no throughput.

-- A step fresh from ready may be claimed in the transaction that readied it.
DROP TRIGGER step_runs_guard ON qflow.step_runs;
CREATE TRIGGER step_runs_guard BEFORE UPDATE ON qflow.step_runs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NOT (
             (OLD.status = 'waiting' AND NEW.status IN ('ready', 'cancelled'))
          OR (OLD.status = 'ready' AND NEW.status IN ('queued', 'running', 'cancelled'))
          OR (OLD.status = 'queued' AND NEW.status IN ('running', 'ready', 'cancelled'))
          OR (OLD.status = 'running' AND NEW.status IN ('succeeded', 'failed', 'skipped', 'ready', 'cancelled'))))
    EXECUTE FUNCTION qflow.step_runs_guard();

-- finish_steps (006), rewritten with eager dispatch and for fewer statements per call: the
-- hop of a run is now this one transaction, so its statement count is the hop's latency.
-- p_worker names the worker sending the batch and p_classes the worker classes it serves;
-- without them, or for entries without "take", nothing is claimed. Each result row now also
-- carries the step the entry's slot takes next (next_*), or NULLs.
--
-- A call: take the runs' locks in id order (timing out runs past their deadline); record the
-- completions, their attempts, the successors' counters and the runs' remaining steps in one
-- statement; hand freed concurrency slots on; succeed runs with no step left; claim the eager
-- successors in one statement and queue the other ready steps; apply failures and releases
-- one by one (fail_step, release_step); complete the batch's River jobs last (after the run
-- locks, the order the sweep takes them in).
DROP FUNCTION qflow.finish_steps;

CREATE FUNCTION qflow.finish_steps(p_results jsonb, p_worker text DEFAULT NULL, p_classes text[] DEFAULT '{}')
RETURNS TABLE (run_id bigint, step text, attempt integer, outcome text,
               next_step text, next_attempt integer, next_job_id bigint, next_workflow text,
               next_timeout_ms bigint, next_input jsonb, next_deps jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_r          record;
    v_run_ids    bigint[];   -- the batch's runs, ascending: the lock order
    v_others     integer;    -- entries that are not completions
    v_jobs       bigint[];   -- the batch's River jobs
    v_runs       bigint[];   -- the completed steps, as parallel arrays
    v_steps      text[];
    v_attempts   integer[];
    v_ords       bigint[];   -- the entry (position in p_results) that completed each
    v_limited    boolean;    -- one of them has a concurrency limit
    v_finished   bigint[];   -- runs whose last step completed
    v_ready_runs bigint[];   -- runs with steps made ready
    v_n_ready    integer;
    v_group      record;
    v_queues     text[] := '{}';
    -- eager claims, as parallel arrays: the entry whose slot takes it, and the claimed step
    v_e_ords     bigint[];
    v_e_runs     bigint[];
    v_e_steps    text[];
    v_e_atts     integer[];
    v_e_jobs     bigint[];
    v_e_flows    text[];
    v_e_tmos     bigint[];
    v_e_inputs   jsonb[];
    v_e_deps     jsonb[];
BEGIN
    SELECT array_agg(DISTINCT x.run_id ORDER BY x.run_id), count(*) FILTER (WHERE x.result IS DISTINCT FROM 'complete'),
           array_agg(x.job_id) FILTER (WHERE x.job_id IS NOT NULL)
      INTO v_run_ids, v_others, v_jobs
      FROM jsonb_to_recordset(p_results) AS x(run_id bigint, result text, job_id bigint);

    -- A run past its deadline times out here and now, whenever the sweep would have got to it:
    -- a result arriving after the deadline must not let the run succeed.
    FOR v_r IN
        SELECT r.id, r.status, r.deadline, r.deadline - r.created_at AS budget
          FROM qflow.runs r
         WHERE r.id = ANY (v_run_ids)
         ORDER BY r.id
           FOR UPDATE
    LOOP
        IF v_r.status IN ('pending', 'running') AND v_r.deadline < now() THEN
            PERFORM qflow.finish_run(v_r.id, 'timed_out', format('run exceeded its deadline (%s)', v_r.budget));
        END IF;
    END LOOP;

    -- Completions: only the attempt that is running may complete its step. Each successor
    -- loses one pending dependency per completed dependency; each run one remaining step per
    -- completed step.
    -- (run_id = ANY: rows are always found by primary key, see 017_set_based_claims.sql.)
    WITH e AS (
        SELECT x.*
          FROM ROWS FROM (jsonb_to_recordset(p_results) AS (run_id bigint, step text, attempt integer, result text, output jsonb))
               WITH ORDINALITY AS x(run_id, step, attempt, result, output, ord)
         WHERE x.result = 'complete'
    ), done AS (
        UPDATE qflow.step_runs sr
           SET status = 'succeeded', output = coalesce(e.output, 'null'), error = NULL,
               finished_at = now(), lease_expires_at = NULL
          FROM e
         WHERE sr.run_id = ANY (v_run_ids)
           AND sr.run_id = e.run_id AND sr.step = e.step AND sr.attempt = e.attempt AND sr.status = 'running'
        RETURNING sr.run_id, sr.step, sr.attempt, sr.workflow, sr.version, e.ord
    ), attempts AS (
        UPDATE qflow.step_attempts a
           SET status = 'succeeded', finished_at = now()
          FROM done d
         WHERE a.run_id = d.run_id AND a.step = d.step AND a.attempt = d.attempt
        RETURNING a.run_id
    ), successors AS (
        UPDATE qflow.step_runs succ
           SET remaining_deps = succ.remaining_deps - x.n,
               status = CASE WHEN succ.remaining_deps = x.n THEN 'ready' ELSE 'waiting' END
          FROM (SELECT d.run_id, dep.step, count(*)::integer AS n
                  FROM done d
                  JOIN qflow.step_deps dep ON dep.workflow = d.workflow AND dep.version = d.version AND dep.depends_on = d.step
                 GROUP BY d.run_id, dep.step) x
         WHERE succ.run_id = x.run_id AND succ.step = x.step AND succ.status = 'waiting'
        RETURNING succ.run_id, succ.status
    ), counted AS (
        UPDATE qflow.runs r
           SET remaining_steps = r.remaining_steps - x.n
          FROM (SELECT d.run_id, count(*)::integer AS n FROM done d GROUP BY d.run_id) x
         WHERE r.id = x.run_id
        RETURNING r.id, r.remaining_steps
    )
    SELECT array_agg(d.run_id), array_agg(d.step), array_agg(d.attempt), array_agg(d.ord),
           coalesce(bool_or(st.max_concurrency IS NOT NULL), false),
           (SELECT array_agg(c.id) FROM counted c WHERE c.remaining_steps = 0),
           (SELECT array_agg(DISTINCT s.run_id) FROM successors s WHERE s.status = 'ready'),
           (SELECT count(*) FROM successors s WHERE s.status = 'ready')
      INTO v_runs, v_steps, v_attempts, v_ords, v_limited, v_finished, v_ready_runs, v_n_ready
      FROM done d
      JOIN qflow.steps st ON st.workflow = d.workflow AND st.version = d.version AND st.name = d.step;

    IF v_runs IS NOT NULL THEN
        -- Slots freed under concurrency limits, in (workflow, position) order like every
        -- taker of those locks.
        IF v_limited THEN
            FOR v_group IN
                SELECT DISTINCT sr.workflow, s.position, sr.step
                  FROM unnest(v_runs, v_steps) AS d(run_id, step)
                  JOIN qflow.step_runs sr ON sr.run_id = d.run_id AND sr.step = d.step
                  JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
                 WHERE s.max_concurrency IS NOT NULL
                 ORDER BY 1, 2
            LOOP
                v_queues := v_queues || qflow.dispatch_limited(v_group.workflow, v_group.step);
            END LOOP;
            PERFORM qflow.notify_queues(v_queues);
        END IF;

        -- Runs whose last step completed succeed, all in one statement: finish_run's other
        -- work (stopping live steps and jobs, handing on their slots) has nothing to do for
        -- a run with no step left. The output is the leaf steps' outputs.
        IF v_finished IS NOT NULL THEN
            UPDATE qflow.runs r
               SET status = 'succeeded', finished_at = now(), error = NULL,
                   output = (SELECT coalesce(jsonb_object_agg(sr.step, sr.output), '{}')
                               FROM qflow.step_runs sr
                               JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
                              WHERE sr.run_id = r.id AND s.is_leaf AND sr.status = 'succeeded')
             WHERE r.id = ANY (v_finished) AND r.status = 'running';
        END IF;
    END IF;

    -- Eager dispatch: each completed entry that offers its slot takes one step of its own run
    -- that the batch made ready (the n-th offer of a run the n-th ready step, by topological
    -- position), in one statement: its River job inserted running, the step claimed with a
    -- lease, its attempt opened, its input returned.
    IF p_worker IS NOT NULL AND v_ready_runs IS NOT NULL THEN
        WITH entry AS (
            SELECT x.*
              FROM ROWS FROM (jsonb_to_recordset(p_results) AS (run_id bigint, result text, take boolean))
                   WITH ORDINALITY AS x(run_id, result, take, ord)
        ), offer AS (
            SELECT x.ord, x.run_id, row_number() OVER (PARTITION BY x.run_id ORDER BY x.ord) AS n
              FROM entry x
              JOIN unnest(v_ords) AS d(ord) ON d.ord = x.ord
             WHERE x.take AND x.run_id = ANY (v_ready_runs)
               AND NOT EXISTS (SELECT 1 FROM entry o WHERE o.run_id = x.run_id AND o.result IS DISTINCT FROM 'complete')
        ), ready AS (
            SELECT sr.run_id, sr.step, sr.attempt + 1 AS attempt, sr.priority, sr.workflow, sr.version,
                   s.worker_class, s.timeout_ms,
                   row_number() OVER (PARTITION BY sr.run_id ORDER BY s.position) AS n
              FROM qflow.step_runs sr
              JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
             WHERE sr.run_id = ANY (v_ready_runs) AND sr.run_id IN (SELECT o.run_id FROM offer o) AND sr.status = 'ready'
               AND s.max_concurrency IS NULL AND s.worker_class = ANY (p_classes)
               AND (sr.next_attempt_at IS NULL OR sr.next_attempt_at <= now())
        ), picked AS (
            SELECT o.ord, r.*
              FROM offer o
              JOIN ready r ON r.run_id = o.run_id AND r.n = o.n
             WHERE NOT EXISTS (SELECT 1 FROM river.river_job j
                                WHERE j.state = 'available' AND j.queue = r.worker_class
                                  AND j.priority < r.priority AND j.scheduled_at <= now())
        ), jobs AS (
            INSERT INTO river.river_job (args, kind, max_attempts, queue, priority, state, attempt,
                                         attempted_at, attempted_by, scheduled_at)
            SELECT jsonb_build_object('run_id', p.run_id, 'step', p.step, 'attempt', p.attempt),
                   'qflow_step', 1, p.worker_class, p.priority, 'running', 1, now(), ARRAY[p_worker], now()
              FROM picked p
            RETURNING id, args
        ), claimed AS (
            UPDATE qflow.step_runs sr
               SET status = 'running', attempt = p.attempt, job_id = j.id, worker = p_worker,
                   queued_at = now(), started_at = now(),
                   lease_expires_at = now() + p.timeout_ms * interval '1 millisecond' + qflow.lease_grace()
              FROM jobs j
              JOIN picked p ON p.run_id = (j.args ->> 'run_id')::bigint AND p.step = j.args ->> 'step'
             WHERE sr.run_id = p.run_id AND sr.step = p.step
            RETURNING sr.run_id, sr.step, sr.attempt, sr.job_id
        ), opened AS (
            INSERT INTO qflow.step_attempts (run_id, step, attempt, job_id, worker, status)
            SELECT c.run_id, c.step, c.attempt, c.job_id, p_worker, 'running' FROM claimed c
            RETURNING step_attempts.run_id
        )
        SELECT array_agg(p.ord), array_agg(p.run_id), array_agg(p.step), array_agg(p.attempt), array_agg(c.job_id),
               array_agg(p.workflow), array_agg(p.timeout_ms), array_agg(r.input),
               array_agg(coalesce((SELECT jsonb_object_agg(d.depends_on, dep.output)
                                     FROM qflow.step_deps d
                                     JOIN qflow.step_runs dep ON dep.run_id = p.run_id AND dep.step = d.depends_on
                                    WHERE d.workflow = p.workflow AND d.version = p.version AND d.step = p.step), '{}'))
          INTO v_e_ords, v_e_runs, v_e_steps, v_e_atts, v_e_jobs, v_e_flows, v_e_tmos, v_e_inputs, v_e_deps
          FROM picked p
          JOIN claimed c ON c.run_id = p.run_id AND c.step = p.step
          JOIN qflow.runs r ON r.id = p.run_id;
    END IF;

    -- The ready steps nobody took go to their queues.
    IF v_n_ready > coalesce(cardinality(v_e_runs), 0) THEN
        PERFORM qflow.dispatch(v_ready_runs);
    END IF;

    RETURN QUERY
    SELECT x.run_id, x.step, x.attempt,
           CASE WHEN d.run_id IS NULL THEN 'stale' ELSE 'completed' END,
           c.step, c.attempt, c.job_id, c.workflow, c.timeout_ms, c.input, c.deps
      FROM ROWS FROM (jsonb_to_recordset(p_results) AS (run_id bigint, step text, attempt integer, result text))
           WITH ORDINALITY AS x(run_id, step, attempt, result, ord)
      LEFT JOIN unnest(v_runs, v_steps, v_attempts) AS d(run_id, step, attempt)
        ON d.run_id = x.run_id AND d.step = x.step AND d.attempt = x.attempt
      LEFT JOIN unnest(v_e_ords, v_e_steps, v_e_atts, v_e_jobs, v_e_flows, v_e_tmos, v_e_inputs, v_e_deps)
                AS c(ord, step, attempt, job_id, workflow, timeout_ms, input, deps)
        ON c.ord = x.ord
     WHERE x.result = 'complete';

    IF v_others > 0 THEN
        next_step := NULL; next_attempt := NULL; next_job_id := NULL; next_workflow := NULL;
        next_timeout_ms := NULL; next_input := NULL; next_deps := NULL;
        FOR v_r IN
            SELECT *
              FROM jsonb_to_recordset(p_results) AS x(run_id bigint, step text, attempt integer, result text,
                                                      error text, permanent boolean, timed_out boolean)
             WHERE x.result IS DISTINCT FROM 'complete'
             ORDER BY x.run_id, x.step
        LOOP
            run_id := v_r.run_id;
            step := v_r.step;
            attempt := v_r.attempt;
            CASE v_r.result
                WHEN 'fail' THEN
                    outcome := qflow.fail_step(v_r.run_id, v_r.step, v_r.attempt, v_r.error,
                                               coalesce(v_r.permanent, false), coalesce(v_r.timed_out, false));
                WHEN 'release' THEN
                    outcome := CASE WHEN qflow.release_step(v_r.run_id, v_r.step, v_r.attempt, v_r.error)
                                    THEN 'released' ELSE 'stale' END;
                ELSE
                    RAISE EXCEPTION 'qflow: finish_steps: unknown result %', coalesce(quote_literal(v_r.result), 'NULL')
                        USING ERRCODE = 'invalid_parameter_value';
            END CASE;
            RETURN NEXT;
        END LOOP;
    END IF;

    -- The jobs are done whatever the outcome: a retry is a new job.
    UPDATE river.river_job j
       SET state = 'completed', finalized_at = now()
     WHERE j.id = ANY (v_jobs) AND j.state = 'running';
END $$;
