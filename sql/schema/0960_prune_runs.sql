-- prune_runs deletes up to p_batch finished runs older than their workflow's retention
-- (qflow.retention, else the setting retention_days), oldest first, with their step rows and
-- attempts (ON DELETE CASCADE) and their artifacts (ml.artifacts, by run; models keep their own
-- weights, and a model trained by a deleted run keeps them, its training_run_id going NULL).
-- River's completed and cancelled jobs are removed by River's own job cleaner (a day after
-- they finish, by default), not here. A run that is running is never touched: only rows with
-- finished_at are candidates, found through runs_finished; rows another transaction holds are
-- skipped, so pruning never waits on, or blocks, the hot path. The sweep calls it in batches
-- (0650_sweep.sql). A run whose output a live cache entry holds (0260_step_cache.sql) is kept,
-- with the artifacts that output may name, until the entry expires; expired entries go first.
-- Returns how many runs went.
CREATE FUNCTION qflow.prune_runs(p_batch integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_default  integer;
    v_shortest integer;
    v_count    integer;
BEGIN
    SELECT value INTO v_default FROM qflow.settings WHERE key = 'retention_days';
    v_default := coalesce(v_default, 30);
    -- No run finished after now() - the shortest retention can be due: that bound is what lets
    -- the scan of runs_finished stop at once when nothing is (the per-run test cannot).
    SELECT least(v_default, min(days)) INTO v_shortest FROM qflow.retention;
    DELETE FROM qflow.step_cache c
     WHERE c.ctid = ANY (ARRAY(SELECT x.ctid FROM qflow.step_cache x WHERE x.expires_at < now() LIMIT p_batch));
    WITH doomed AS (
        SELECT r.id
          FROM qflow.runs r
          LEFT JOIN qflow.retention rt ON rt.workflow = r.workflow
         WHERE r.finished_at IS NOT NULL
           AND r.finished_at < now() - make_interval(days => v_shortest)
           AND r.finished_at < now() - make_interval(days => coalesce(rt.days, v_default))
           AND NOT EXISTS (SELECT 1 FROM qflow.step_cache c WHERE c.run_id = r.id AND c.expires_at > now())
         ORDER BY r.finished_at
         LIMIT p_batch
           FOR UPDATE OF r SKIP LOCKED
    )
    DELETE FROM qflow.runs r USING doomed WHERE r.id = doomed.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;
