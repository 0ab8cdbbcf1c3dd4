-- The sweep's search for lost step jobs, at a cost that no longer grows with the backlog.
--
-- A queued step whose River job can no longer run it is queued again (sweep_lost_job, 015).
-- Until now each sweep, every second, joined every queued step with its job: 50 ms with 20,000
-- steps queued, growing with the backlog and with River's job table. Each sweep now looks only
-- where lost jobs come from, through River's indexes on job state:
--
--   - a worker fetched the job and died before claiming its step: the job has been running for
--     30 seconds and the step is still queued with it (as before);
--   - the job was finalized in the last minute while its step still waits for it: River
--     discarded it after an infrastructure error, or somebody cancelled it (one finalized
--     while no sweep ran is left to the complete search below).
--
-- Everything else (a job deleted by hand, completed without its step, finalized longer ago)
-- is rare enough for the complete search, which now runs every 5 minutes. The one common
-- source of a job completed without its step, a claim undone by an immediate restart (see
-- 005), is now handled where it shows: finish_steps queues such a step again at once.

CREATE TABLE qflow.sweep_state (
    id           boolean     PRIMARY KEY DEFAULT true CHECK (id),
    -- when the sweep last searched every queued step for a lost job
    full_scan_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO qflow.sweep_state DEFAULT VALUES;

-- sweep_full_scan_due says whether the complete search is due (last run p_every ago or more)
-- and, when it is, records that it runs now.
CREATE FUNCTION qflow.sweep_full_scan_due(p_every interval)
RETURNS boolean
LANGUAGE sql AS $$
    WITH due AS (
        UPDATE qflow.sweep_state SET full_scan_at = now() WHERE full_scan_at <= now() - p_every RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM due)
$$;

INSERT INTO qflow.procedure_access (name, roles, definer) VALUES ('sweep_full_scan_due', '{worker}', true);

-- sweep (015), with the search for lost jobs above.
CREATE OR REPLACE PROCEDURE qflow.sweep(INOUT timed_out_runs integer DEFAULT 0, INOUT expired_leases integer DEFAULT 0,
                                        INOUT requeued_steps integer DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_row  record;
    v_job  record;
    v_step record;
BEGIN
    timed_out_runs := 0;
    expired_leases := 0;
    requeued_steps := 0;
    FOR v_row IN
        SELECT id FROM qflow.runs
         WHERE status IN ('pending', 'running') AND deadline < now()
         ORDER BY id LIMIT 1000
    LOOP
        IF qflow.sweep_deadline(v_row.id) THEN
            timed_out_runs := timed_out_runs + 1;
        END IF;
        COMMIT;
    END LOOP;

    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt FROM qflow.step_runs sr
         WHERE sr.status = 'running' AND sr.lease_expires_at < now()
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.sweep_lease(v_row.run_id, v_row.step, v_row.attempt) THEN
            expired_leases := expired_leases + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- Lost jobs, where they come from: found from the job's side, by state, each candidate's
    -- step then read by primary key. The plans of a procedure are cached for its session,
    -- often from when the tables were empty, so the statements leave a plan no room to go
    -- wrong: the candidates are read apart from the kind (whose index lists every step job),
    -- and the step without a condition on its status (which would let the partial index of
    -- every queued step serve). As one join, a cached plan walked every step job and, for
    -- each, every queued step: minutes per sweep once a bulk INSERT had queued 20,000.
    FOR v_job IN
        WITH candidates AS MATERIALIZED (
            SELECT j.id, j.kind, j.args FROM river.river_job j
             WHERE j.state = 'running' AND j.attempted_at < now() - interval '30 seconds'
            UNION ALL
            SELECT j.id, j.kind, j.args FROM river.river_job j
             WHERE j.state IN ('discarded', 'cancelled') AND j.finalized_at > now() - interval '1 minute'
        )
        SELECT c.id, (c.args ->> 'run_id')::bigint AS run_id, c.args ->> 'step' AS step
          FROM candidates c
         WHERE c.kind = 'qflow_step'
         LIMIT 1000
    LOOP
        SELECT sr.attempt, sr.status, sr.job_id INTO v_step
          FROM qflow.step_runs sr
         WHERE sr.run_id = v_job.run_id AND sr.step = v_job.step;
        CONTINUE WHEN NOT FOUND OR v_step.status <> 'queued' OR v_step.job_id IS DISTINCT FROM v_job.id;
        IF qflow.sweep_lost_job(v_job.run_id, v_job.step, v_step.attempt, v_job.id) THEN
            requeued_steps := requeued_steps + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- Every queued step, every 5 minutes: its job gone, finalized (any state, any time ago),
    -- or fetched and never claimed.
    IF qflow.sweep_full_scan_due(interval '5 minutes') THEN
        COMMIT;
        FOR v_row IN
            SELECT sr.run_id, sr.step, sr.attempt, sr.job_id FROM qflow.step_runs sr
              LEFT JOIN river.river_job j ON j.id = sr.job_id
             WHERE sr.status = 'queued'
               AND (j.id IS NULL
                    OR j.state NOT IN ('available', 'scheduled', 'retryable', 'running', 'pending')
                    OR (j.state = 'running' AND j.attempted_at < now() - interval '30 seconds'))
             ORDER BY sr.run_id LIMIT 1000
        LOOP
            IF qflow.sweep_lost_job(v_row.run_id, v_row.step, v_row.attempt, v_row.job_id) THEN
                requeued_steps := requeued_steps + 1;
            END IF;
            COMMIT;
        END LOOP;
    END IF;

    PERFORM qflow.sweep_orphaned_jobs();
    COMMIT;

    FOR v_row IN
        SELECT DISTINCT sr.workflow, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.status = 'ready' AND s.max_concurrency IS NOT NULL
    LOOP
        PERFORM qflow.sweep_limited(v_row.workflow, v_row.step);
        COMMIT;
    END LOOP;

    DELETE FROM qflow.workers WHERE last_seen_at < now() - interval '1 hour';
END $$;

-- finish_steps (016), queueing again at once the step of a result whose claim was lost.
CREATE OR REPLACE FUNCTION qflow.finish_steps(p_results jsonb, p_worker text DEFAULT NULL, p_classes text[] DEFAULT '{}')
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
    v_stale      boolean;    -- some result was stale
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
    v_stale := coalesce(cardinality(v_runs), 0) < jsonb_array_length(p_results) - v_others;

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
            v_stale := v_stale OR outcome = 'stale';
            RETURN NEXT;
        END LOOP;
    END IF;

    -- A stale result whose step is still queued with the result's job: the worker's claim
    -- was lost (claims commit without waiting for the WAL flush, and an immediate restart can
    -- undo one), so the attempt it ran never happened. The step is queued again now, as the
    -- sweep would once it found the job completed below.
    -- (The status is checked here rather than in the query: see the sweep above.)
    IF v_stale THEN
        FOR v_r IN
            SELECT sr.run_id, sr.step, sr.attempt, sr.job_id, sr.status
              FROM jsonb_to_recordset(p_results) AS x(run_id bigint, step text, job_id bigint)
              JOIN qflow.step_runs sr ON sr.run_id = x.run_id AND sr.step = x.step AND sr.job_id = x.job_id
             WHERE sr.run_id = ANY (v_run_ids)
        LOOP
            IF v_r.status = 'queued' THEN
                PERFORM qflow.sweep_lost_job(v_r.run_id, v_r.step, v_r.attempt, v_r.job_id);
            END IF;
        END LOOP;
    END IF;

    -- The jobs are done whatever the outcome: a retry is a new job.
    UPDATE river.river_job j
       SET state = 'completed', finalized_at = now()
     WHERE j.id = ANY (v_jobs) AND j.state = 'running';
END $$;
-- CREATE OR REPLACE reset its settings (017).
ALTER FUNCTION qflow.finish_steps SET plan_cache_mode = force_generic_plan;
