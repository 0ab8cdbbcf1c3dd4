-- step_job_args: the args of the qflow_step job that runs one attempt of a step. The worker
-- decodes them as worker.StepArgs (a test keeps the two the same).
CREATE FUNCTION qflow.step_job_args(p_run_id bigint, p_step text, p_attempt integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('run_id', p_run_id, 'step', p_step, 'attempt', p_attempt)
$$;
