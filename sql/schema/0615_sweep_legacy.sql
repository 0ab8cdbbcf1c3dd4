-- sweep_legacy retries a legacy run whose job's worker died mid-chain (its liveness lock is
-- free): the attempt fails like a failed chain (legacy_fail: retried with backoff, or the run
-- fails when its budget is spent) and the dead job is cancelled, whatever became of the run,
-- so River's rescuer, an hour on, never runs it again. True when the run was retried or failed.
CREATE FUNCTION qflow.sweep_legacy(p_run_id bigint, p_attempt integer, p_job_id bigint, p_worker text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
BEGIN
    v_outcome := qflow.legacy_fail(p_run_id, p_attempt,
                                   format('worker %s died: its database session ended while it ran the chain', p_worker));
    PERFORM qflow.river_finalize_jobs(ARRAY[p_job_id], 'cancelled', '{running}');
    RETURN v_outcome <> 'stale';
END $$;
