-- finish_steps: a worker reports the results of its attempts, a batch at a time, and its
-- River jobs complete in the same transaction: a step's result and its job's completion
-- commit together or not at all.
--
-- Entries are {run_id, step, attempt, job_id, result: "complete" | "fail" | "release", output,
-- error, permanent, timed_out, take}. Only the attempt that is running may end it: a late
-- result changes nothing and its outcome is 'stale'. Outcomes: 'completed' or 'stale' for a
-- completion, fail_step's outcome (0530_fail_step.sql) for a failure, 'released' or 'stale'
-- for a release (0540_release_step.sql).
--
-- Idempotent: the outcome of each result, and the successor its slot took, are kept on the
-- attempt (step_attempts.outcome, next_step, next_attempt). The same result sent again by the
-- same worker (p_worker) -- its reply was lost -- changes nothing and gets the first call's
-- answer, including the successor taken eagerly while that is still running on this worker,
-- so the worker runs it instead of leaving it running with nobody running it.
--
-- A call: take the batch's runs' locks in id order (timing out runs past their deadline: a
-- result arriving after the deadline must not let the run succeed); record the completions
-- and their attempts in one statement; settle them (0520_settle_steps.sql: successors'
-- counters, runs' remaining steps, freed concurrency slots, runs with no step left succeed);
-- claim eager successors and queue the other ready steps; apply failures and releases one by
-- one; complete the batch's River jobs last (after the run locks, the order the sweep takes
-- them in). The hop of a run is this one transaction, so its statement count is the hop's
-- latency.
--
-- Eager dispatch: the worker that finishes a step runs the step it made ready. Without it,
-- every hop costs three transactions and a wake-up (this call queues the successor's job and
-- notifies, a producer fetches it, the worker claims it). A worker sending a completion already
-- has a free slot: the one its finished step held. With "take": true on the entry it offers
-- that slot, and this call claims, in the transaction that records the result, one successor
-- of that run made ready by it: its River job inserted already running and attempted by that
-- worker (p_worker), the step running with a lease and an attempt row, its input returned in
-- the entry's next_* columns. The worker runs it at once, in the same River slot. Everything
-- else is as for a fetched job. Eager dispatch takes only what a queue would have handed this
-- worker anyway:
--   - a step of a worker class the worker serves (p_classes),
--   - with no max_concurrency (limited steps wait for their slot in dispatch_limited),
--   - whose retry backoff (next_attempt_at) has passed,
--   - in a run none of whose other results in the batch failed or was released,
--   - and only while no job of a higher priority (a lower number) waits in that queue.
-- A run's other ready steps (a fan-out) are queued as before, for any worker. Among equal
-- priorities a run in progress goes before runs that have not started (depth first), which
-- shortens runs and changes no throughput.
--
-- Completions are looked up with run_id = ANY and the status as a variable, and one generic
-- plan is kept per connection, for the reasons given in 0500_claim_steps.sql.
CREATE FUNCTION qflow.finish_steps(p_results jsonb, p_worker text DEFAULT NULL, p_classes text[] DEFAULT '{}')
RETURNS TABLE (run_id bigint, step text, attempt integer, outcome text,
               next_step text, next_attempt integer, next_job_id bigint, next_workflow text,
               next_timeout_ms bigint, next_input jsonb, next_deps jsonb, next_item jsonb)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_r          record;
    v_run_ids    bigint[];   -- the batch's runs, ascending: the lock order
    v_others     integer;    -- entries that are not completions
    v_jobs       bigint[];   -- the batch's River jobs
    v_runs       bigint[];   -- the completed steps, as parallel arrays
    v_steps      text[];
    v_attempts   integer[];
    v_flows      text[];
    v_versions   integer[];
    v_ords       bigint[];   -- the entry (position in p_results) that completed each
    v_ready_runs bigint[];   -- runs with steps made ready
    v_n_ready    integer;
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
    v_e_items    jsonb[];
    v_settled    record;     -- what settle_steps made ready
    v_finalized  integer;
    v_running    constant text := 'running';   -- a parameter: see 0500_claim_steps.sql
    v_ready      constant text := 'ready';
BEGIN
    SELECT array_agg(DISTINCT x.run_id ORDER BY x.run_id), count(*) FILTER (WHERE x.result IS DISTINCT FROM 'complete'),
           array_agg(x.job_id) FILTER (WHERE x.job_id IS NOT NULL)
      INTO v_run_ids, v_others, v_jobs
      FROM jsonb_to_recordset(p_results) AS x(run_id bigint, result text, job_id bigint);

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

    -- Completions: only the attempt that is running may complete its step.
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
           AND sr.run_id = e.run_id AND sr.step = e.step AND sr.attempt = e.attempt AND sr.status = v_running
           AND sr.tasks IS NULL   -- a map step's own row runs no attempt: its elements do
        RETURNING sr.run_id, sr.step, sr.attempt, sr.workflow, sr.version, e.ord
    ), attempts AS (
        UPDATE qflow.step_attempts a
           SET status = 'succeeded', finished_at = now(), outcome = 'completed'
          FROM done d
         WHERE a.run_id = d.run_id AND a.step = d.step AND a.attempt = d.attempt
        RETURNING a.run_id
    )
    SELECT array_agg(d.run_id), array_agg(d.step), array_agg(d.attempt), array_agg(d.workflow), array_agg(d.version),
           array_agg(d.ord)
      INTO v_runs, v_steps, v_attempts, v_flows, v_versions, v_ords
      FROM done d;

    -- Calls made as plain assignments, not queries: PL/pgSQL evaluates them without setting up
    -- a query each (a few tens of microseconds a hop).
    IF v_runs IS NOT NULL THEN
        v_settled := qflow.settle_steps(v_runs, v_steps, v_flows, v_versions, NULL);
        v_ready_runs := v_settled.ready_runs;
        v_n_ready := v_settled.ready_steps;
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
                   s.worker_class, s.timeout_ms, sr.def_step, sr.item,
                   CASE WHEN sr.task IS NOT NULL THEN s.map_over END AS mapped,
                   row_number() OVER (PARTITION BY sr.run_id ORDER BY s.position, sr.task) AS n
              FROM qflow.step_runs sr
              JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
             WHERE sr.run_id = ANY (v_ready_runs) AND sr.run_id IN (SELECT o.run_id FROM offer o) AND sr.status = v_ready
               AND s.max_concurrency IS NULL AND s.worker_class = ANY (p_classes)
               AND (sr.next_attempt_at IS NULL OR sr.next_attempt_at <= now())
        ), picked AS (
            SELECT o.ord, r.*, qflow.step_job_args(r.run_id, r.step, r.attempt) AS args
              FROM offer o
              JOIN ready r ON r.run_id = o.run_id AND r.n = o.n
             WHERE NOT EXISTS (SELECT 1 FROM river.river_job j
                                WHERE j.state = 'available' AND j.queue = r.worker_class
                                  AND j.priority < r.priority AND j.scheduled_at <= now())
        ), jobs AS (
            SELECT j.id, j.args
              FROM qflow.river_insert_jobs('qflow_step', ARRAY(SELECT p.args FROM picked p ORDER BY p.ord),
                                           ARRAY(SELECT p.worker_class FROM picked p ORDER BY p.ord),
                                           ARRAY(SELECT p.priority FROM picked p ORDER BY p.ord),
                                           NULL, p_worker) j
        ), claimed AS (
            UPDATE qflow.step_runs sr
               SET status = 'running', attempt = p.attempt, job_id = j.id, worker = p_worker,
                   queued_at = now(), started_at = now(), lease_expires_at = qflow.lease_expiry(now(), p.timeout_ms)
              FROM jobs j
              JOIN picked p ON p.args = j.args
             WHERE sr.run_id = p.run_id AND sr.step = p.step
            RETURNING sr.run_id, sr.step, sr.attempt, sr.job_id
        ), opened AS (
            INSERT INTO qflow.step_attempts (run_id, step, attempt, job_id, worker, status)
            SELECT c.run_id, c.step, c.attempt, c.job_id, p_worker, 'running' FROM claimed c
            RETURNING step_attempts.run_id
        ), linked AS (
            -- The finished attempt remembers the successor its slot took, for a repeated call.
            UPDATE qflow.step_attempts a
               SET next_step = p.step, next_attempt = p.attempt
              FROM picked p
              JOIN unnest(v_ords, v_steps, v_attempts) AS d(ord, step, attempt) ON d.ord = p.ord
             WHERE a.run_id = p.run_id AND a.step = d.step AND a.attempt = d.attempt
            RETURNING a.run_id
        )
        SELECT array_agg(p.ord), array_agg(p.run_id), array_agg(p.step), array_agg(p.attempt), array_agg(c.job_id),
               array_agg(p.workflow), array_agg(p.timeout_ms), array_agg(r.input), array_agg(si.deps), array_agg(p.item)
          INTO v_e_ords, v_e_runs, v_e_steps, v_e_atts, v_e_jobs, v_e_flows, v_e_tmos, v_e_inputs, v_e_deps, v_e_items
          FROM picked p
          JOIN claimed c ON c.run_id = p.run_id AND c.step = p.step
          JOIN qflow.runs r ON r.id = p.run_id AND r.id = ANY (v_ready_runs)
         CROSS JOIN LATERAL qflow.step_input(p.run_id, p.workflow, p.version, p.def_step, p.mapped) si;
    END IF;

    -- The ready steps nobody took go to their queues.
    IF v_n_ready > coalesce(cardinality(v_e_runs), 0) THEN
        PERFORM qflow.dispatch(v_ready_runs);
    END IF;

    -- Completions this call did not record were recorded by an earlier call of this worker
    -- (replayed: its answer again) or are stale.
    RETURN QUERY
    SELECT x.run_id, x.step, x.attempt,
           CASE WHEN d.run_id IS NOT NULL THEN 'completed' ELSE coalesce(a.outcome, 'stale') END,
           coalesce(c.step, n.step), coalesce(c.attempt, n.attempt), coalesce(c.job_id, n.job_id),
           coalesce(c.workflow, n.workflow), coalesce(c.timeout_ms, n.timeout_ms), coalesce(c.input, n.input),
           coalesce(c.deps, n.deps), coalesce(c.item, n.item)
      FROM ROWS FROM (jsonb_to_recordset(p_results) AS (run_id bigint, step text, attempt integer, result text))
           WITH ORDINALITY AS x(run_id, step, attempt, result, ord)
      LEFT JOIN unnest(v_runs, v_steps, v_attempts) AS d(run_id, step, attempt)
        ON d.run_id = x.run_id AND d.step = x.step AND d.attempt = x.attempt
      LEFT JOIN unnest(v_e_ords, v_e_steps, v_e_atts, v_e_jobs, v_e_flows, v_e_tmos, v_e_inputs, v_e_deps, v_e_items)
                AS c(ord, step, attempt, job_id, workflow, timeout_ms, input, deps, item)
        ON c.ord = x.ord
      -- Replays: LATERAL subqueries with LIMIT 1 are not flattened into the join, so their gates
      -- (d.run_id IS NULL, a.next_step IS NOT NULL) are one-time filters, and a completion
      -- recorded now -- the hot path -- costs no lookup at all.
      LEFT JOIN LATERAL (
            SELECT a.outcome, a.next_step, a.next_attempt
              FROM qflow.step_attempts a
             WHERE d.run_id IS NULL AND p_worker IS NOT NULL
               AND a.run_id = x.run_id AND a.step = x.step AND a.attempt = x.attempt AND a.worker = p_worker
               AND a.outcome IS NOT NULL
             LIMIT 1) a ON true
      LEFT JOIN LATERAL (
            SELECT sr.step, sr.attempt, sr.job_id, sr.workflow, s.timeout_ms, r.input, si.deps, sr.item
              FROM qflow.step_runs sr
              JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
              JOIN qflow.runs r ON r.id = sr.run_id
             CROSS JOIN LATERAL qflow.step_input(sr.run_id, sr.workflow, sr.version, sr.def_step,
                                                 CASE WHEN sr.task IS NOT NULL THEN s.map_over END) si
             WHERE a.next_step IS NOT NULL AND sr.run_id = x.run_id AND sr.step = a.next_step
               AND sr.attempt = a.next_attempt AND sr.status = 'running' AND sr.worker = p_worker
             LIMIT 1) n ON true
     WHERE x.result = 'complete';

    IF v_others > 0 THEN
        next_step := NULL; next_attempt := NULL; next_job_id := NULL; next_workflow := NULL;
        next_timeout_ms := NULL; next_input := NULL; next_deps := NULL; next_item := NULL;
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
            IF outcome <> 'stale' THEN
                UPDATE qflow.step_attempts a SET outcome = finish_steps.outcome
                 WHERE a.run_id = v_r.run_id AND a.step = v_r.step AND a.attempt = v_r.attempt;
            ELSIF p_worker IS NOT NULL THEN
                SELECT coalesce(a.outcome, 'stale') INTO outcome
                  FROM qflow.step_attempts a
                 WHERE a.run_id = v_r.run_id AND a.step = v_r.step AND a.attempt = v_r.attempt AND a.worker = p_worker;
                outcome := coalesce(outcome, 'stale');
            END IF;
            RETURN NEXT;
        END LOOP;
    END IF;

    -- The jobs are done whatever the outcome: a retry is a new job.
    v_finalized := qflow.river_finalize_jobs(v_jobs, 'completed', '{running}');
END $$;
