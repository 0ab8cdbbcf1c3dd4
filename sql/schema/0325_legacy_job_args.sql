-- legacy_job_args: the args of the qflow_legacy job that runs one attempt of a whole legacy
-- run. The worker decodes them as worker.LegacyArgs (a test keeps the two the same).
CREATE FUNCTION qflow.legacy_job_args(p_run_id bigint, p_attempt integer)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('run_id', p_run_id, 'attempt', p_attempt)
$$;
