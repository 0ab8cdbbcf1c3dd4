-- step_job_args: the args of the qflow_step job that runs one attempt of a step. The worker
-- decodes them as worker.StepArgs (a test keeps the two the same).
-- STABLE, as jsonb_build_object is: a SQL function declared more strictly than its body is
-- never inlined, and was called as a function of its own for every job.
CREATE FUNCTION qflow.step_job_args(p_run_id bigint, p_step text, p_attempt integer)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('run_id', p_run_id, 'step', p_step, 'attempt', p_attempt)
$$;
