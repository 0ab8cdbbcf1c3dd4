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
    v_runs     bigint[];
    v_steps    text[];
    v_args     jsonb[];
    v_queues   text[];
    v_prios    smallint[];
    v_times    timestamptz[];
BEGIN
    IF p_run_ids IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(sr.run_id), array_agg(sr.step), array_agg(qflow.step_job_args(sr.run_id, sr.step, sr.attempt + 1)),
           array_agg(s.worker_class), array_agg(sr.priority), array_agg(sr.next_attempt_at)
      INTO v_runs, v_steps, v_args, v_queues, v_prios, v_times
      FROM unnest(p_run_ids, p_steps) AS k(run_id, step)
      JOIN qflow.step_runs sr ON sr.run_id = k.run_id AND sr.step = k.step
      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
     WHERE sr.status = 'ready';

    UPDATE qflow.step_runs sr
       SET status = 'queued', attempt = sr.attempt + 1, job_id = j.id, queued_at = now()
      FROM qflow.river_insert_jobs('qflow_step', v_args, v_queues, v_prios, v_times) j
      JOIN unnest(v_args, v_runs, v_steps) AS x(args, run_id, step) ON x.args = j.args
     WHERE sr.run_id = x.run_id AND sr.step = x.step;
END $$;
