-- sweep_deadline times out a live run whose deadline passed (checked again under its lock: a
-- retry may have moved the deadline since the sweep looked).
CREATE FUNCTION qflow.sweep_deadline(p_run_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_budget interval;
BEGIN
    SELECT deadline - created_at INTO v_budget FROM qflow.runs
     WHERE id = p_run_id AND status IN ('pending', 'running') AND deadline < now()
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN qflow.finish_run(p_run_id, 'timed_out', format('run exceeded its deadline (%s)', v_budget));
END $$;
