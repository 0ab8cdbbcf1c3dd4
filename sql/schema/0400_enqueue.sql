-- Dispatch (this file, 0410_dispatch_limited.sql and 0420_dispatch.sql): ready steps become
-- queued River jobs.
--
-- A job is {run_id, step, attempt} (0320_step_job_args.sql) of kind qflow_step in the queue
-- named by the step's worker class. A retried step carries next_attempt_at; its job is
-- inserted as available with a future scheduled_at, which River's fetch honours.
--
-- An element of a map step (0518_prepare_steps.sql) is queued like a step, under its name
-- "<step>[<index>]", in its step's worker class.
--
-- enqueue inserts one River job per given step row (already locked by the caller and ready)
-- and marks the rows queued.
CREATE FUNCTION qflow.enqueue(p_run_ids bigint[], p_steps text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_args     jsonb[];
    v_queues   text[];
    v_prios    smallint[];
    v_times    timestamptz[];
    v_ids      bigint[];
    v_jobs     jsonb[];
    v_ready    constant text := 'ready';   -- a parameter, not a constant: see below
BEGIN
    IF p_run_ids IS NULL THEN
        RETURN;
    END IF;
    -- The rows are found by key. The status is a variable so that the partial index of ready
    -- rows (step_runs_ready) cannot serve the lookup (0500_claim_steps.sql): planned while few
    -- rows were ready, a plan read that whole index for every step, and one INSERT of 20,000
    -- runs spent 45 s here.
    SELECT array_agg(qflow.step_job_args(sr.run_id, sr.step, sr.attempt + 1)),
           array_agg(s.worker_class), array_agg(sr.priority), array_agg(sr.next_attempt_at)
      INTO v_args, v_queues, v_prios, v_times
      FROM unnest(p_run_ids, p_steps) AS k(run_id, step)
      JOIN qflow.step_runs sr ON sr.run_id = k.run_id AND sr.step = k.step
      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
     WHERE sr.status = v_ready;

    SELECT array_agg(j.id), array_agg(j.args) INTO v_ids, v_jobs
      FROM qflow.river_insert_jobs('qflow_step', v_args, v_queues, v_prios, v_times) j;

    -- Each job goes back to its step by its args, read from arrays: the planner sizes an unnest
    -- at a handful of rows and looks every step up by its key, however many there are. (Joined
    -- with the function's rows, a stale estimate after a bulk start made it a hash join rebuilt
    -- for every step: one INSERT of 20,000 runs ran for minutes.)
    UPDATE qflow.step_runs sr
       SET status = 'queued', attempt = sr.attempt + 1, job_id = j.id, queued_at = now()
      FROM unnest(v_ids, v_jobs) AS j(id, args)
     WHERE sr.run_id = (j.args ->> 'run_id')::bigint AND sr.step = j.args ->> 'step';
END $$;
