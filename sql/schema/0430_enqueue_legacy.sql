-- enqueue_legacy queues one attempt of each given legacy run: a qflow_legacy job
-- (0325_legacy_job_args.sql) in the cpu queue, at the run's priority, not before p_not_before
-- (NULL: now). Legacy ("Broadway") mode runs a whole chain in one job; see 0700_legacy_claim.sql.
CREATE FUNCTION qflow.enqueue_legacy(p_run_ids bigint[], p_attempts integer[], p_priorities smallint[],
                                     p_not_before timestamptz[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_run_ids IS NULL OR cardinality(p_run_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM qflow.river_insert_jobs('qflow_legacy',
                                    ARRAY(SELECT qflow.legacy_job_args(r, a) FROM unnest(p_run_ids, p_attempts) AS x(r, a)),
                                    array_fill('cpu'::text, ARRAY[cardinality(p_run_ids)]), p_priorities, p_not_before);
END $$;
