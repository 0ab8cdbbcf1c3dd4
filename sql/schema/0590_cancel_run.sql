-- cancel_run stops a live run; false when it had already finished.
CREATE FUNCTION qflow.cancel_run(p_run_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN qflow.finish_run(p_run_id, 'cancelled', 'cancelled by request');
END $$;
