-- river_finalize_jobs (the River adapter, see 0300_river_insert_jobs.sql) moves the given jobs
-- that are still in one of p_from to the final state p_state ('completed' or 'cancelled'), as
-- River itself finalizes a job. Returns how many moved.
CREATE FUNCTION qflow.river_finalize_jobs(p_ids bigint[], p_state text, p_from text[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN
        RETURN 0;
    END IF;
    UPDATE river.river_job
       SET state = p_state::river.river_job_state, finalized_at = now()
     WHERE id = ANY (p_ids) AND state = ANY (p_from::river.river_job_state[]);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;
