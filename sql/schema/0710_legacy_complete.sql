-- legacy_complete records the output of a legacy run's job and succeeds the run; false when
-- the job is stale.
CREATE FUNCTION qflow.legacy_complete(p_run_id bigint, p_attempt integer, p_output jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE qflow.runs SET output = p_output
     WHERE id = p_run_id AND mode = 'legacy' AND status = 'running' AND attempt = p_attempt;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN qflow.finish_run(p_run_id, 'succeeded', NULL);
END $$;
