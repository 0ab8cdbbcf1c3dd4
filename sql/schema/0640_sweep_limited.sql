-- sweep_limited hands out free slots of a concurrency-limited step that nobody handed on.
CREATE FUNCTION qflow.sweep_limited(p_workflow text, p_step text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qflow.dispatch_limited(p_workflow, p_step);
END $$;
