-- sweep_orphaned_jobs cancels running step jobs that nothing waits for any more: their step
-- moved on (the run finished, or another attempt took over) while the worker holding the job
-- died (p_dead: workers the sweep found dead). A live worker reports a stale job at most a
-- second after the step's timeout; past the lease nobody will, and River would keep the job
-- running until its rescuer, an hour on; a dead worker's never will. It starts from River's
-- running jobs (a few per worker, through River's state index) and looks their steps up by key,
-- with enable_seqscan = off so that a plan cached while River's table was nearly empty does not
-- scan it once it holds a backlog (up to 5.9 s a call while 20,000 runs drained).
CREATE FUNCTION qflow.sweep_orphaned_jobs(p_dead text[])
RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    RETURN qflow.river_finalize_jobs(
        ARRAY(SELECT j.id
                FROM river.river_job j
                JOIN qflow.step_runs sr ON sr.run_id = (j.args ->> 'run_id')::bigint AND sr.step = j.args ->> 'step'
                JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
               WHERE j.state = 'running' AND j.kind = 'qflow_step'
                 AND NOT (sr.status IN ('queued', 'running') AND sr.job_id = j.id)
                 AND (qflow.lease_expiry(j.attempted_at, s.timeout_ms) < now()
                      OR j.attempted_by[cardinality(j.attempted_by)] = ANY (p_dead))),
        'cancelled', '{running}');
END $$;
