-- notify_cancel tells the worker running an attempt that it is no longer wanted (its run was
-- cancelled, failed or timed out, or its lease was given up), on the channel qflow_cancel that
-- every worker listens on (worker/liveness.go): the worker cancels that handler's context, so
-- a training nobody wants stops within a second instead of at its timeout. The notification
-- is sent when the transaction commits, and only then. p_step is NULL for a legacy run's job.
CREATE FUNCTION qflow.notify_cancel(p_worker text, p_run_id bigint, p_step text, p_attempt integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_worker IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_notify('qflow_cancel', json_build_object('worker', p_worker, 'run_id', p_run_id,
                                                        'step', p_step, 'attempt', p_attempt)::text);
END $$;
