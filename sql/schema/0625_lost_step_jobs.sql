-- lost_step_jobs: queued steps whose job can no longer run them (at most 1000, by run), for the
-- sweep to queue again (0620_sweep_lost_job.sql):
--   - a worker fetched the job and died before claiming (p_dead: workers the sweep found dead),
--     or the fetch's reply never reached the worker (a claim follows a fetch within
--     milliseconds; one that has not come in 5 seconds will not: a late one would find its
--     attempt stale). Found from River's running jobs, a few per worker, at every sweep;
--   - the job is gone or finalized (River discarded it after an infrastructure error; someone
--     cancelled or deleted it). Found from the queued steps, which a backlog makes many (one
--     INSERT of 20,000 runs queues 20,000): each sweep checks one sixteenth of them, by run id
--     (the next of 0270_sweep_slices.sql), so a sweep costs a sixteenth of the backlog's job
--     lookups and every queued step is still checked once in sixteen sweeps. (Checking all of
--     them at every sweep took 240 ms a sweep, twice a second, while 20,000 runs drained.)
-- It runs with enable_seqscan = off: each part reads its rows through an index (River's state
-- index, the in-flight steps' partial index) and looks the other side up by key, and a plan
-- cached while the tables were nearly empty must not scan them once they are full.
CREATE FUNCTION qflow.lost_step_jobs(p_dead text[])
RETURNS TABLE (run_id bigint, step text, attempt integer, job_id bigint)
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    WITH slice AS (
        SELECT nextval('qflow.sweep_slices') AS n, s.seqmax + 1 AS slices
          FROM pg_catalog.pg_sequence s WHERE s.seqrelid = 'qflow.sweep_slices'::regclass
    )
    SELECT lost.run_id, lost.step, lost.attempt, lost.job_id
      FROM (SELECT sr.run_id, sr.step, sr.attempt, sr.job_id
              FROM river.river_job j
              JOIN qflow.step_runs sr ON sr.run_id = (j.args ->> 'run_id')::bigint AND sr.step = j.args ->> 'step'
             WHERE j.state = 'running' AND j.kind = 'qflow_step'
               AND sr.status = 'queued' AND sr.job_id = j.id
               AND (j.attempted_by[cardinality(j.attempted_by)] = ANY (p_dead)
                    OR j.attempted_at < now() - interval '5 seconds')
            UNION
            SELECT sr.run_id, sr.step, sr.attempt, sr.job_id
              FROM slice
              JOIN qflow.step_runs sr ON sr.run_id % slice.slices = slice.n
              LEFT JOIN river.river_job j ON j.id = sr.job_id
             WHERE sr.status = 'queued'
               AND (j.id IS NULL OR j.state NOT IN ('available', 'scheduled', 'retryable', 'running', 'pending'))) lost
     ORDER BY lost.run_id
     LIMIT 1000;
END $$;
