-- The River adapter (this file and 0310_river_finalize_jobs.sql): the only writer of River's
-- table, river.river_job, and of River's insert channel. Everything River-specific about
-- writing jobs -- the columns, the states, the notification's payload -- is here, so a River
-- upgrade that changes its table changes these two files, and the adapter's test
-- (river_adapter_test.go: River's own client fetching, completing and cancelling jobs written
-- here) fails until they are right. Reads of river.river_job elsewhere are lookups only.
--
-- river_insert_jobs inserts one job per element of the arrays (args, queue, priority,
-- scheduled_at: NULL for now) of the given kind, each with a single River attempt: retries
-- are ours, a retried step is a new job. Without p_attempted_by the jobs are available and
-- their queues are woken with one notification each on River's insert channel (Postgres folds
-- identical notifications within a transaction, so a transaction wakes each queue once however
-- many calls it makes). With p_attempted_by they are inserted already running, attempted by
-- that worker, which runs them at once without a fetch (eager dispatch) and wakes nobody.
-- Returns each job's id and args.
CREATE FUNCTION qflow.river_insert_jobs(p_kind text, p_args jsonb[], p_queues text[], p_priorities smallint[],
                                        p_scheduled_at timestamptz[] DEFAULT NULL, p_attempted_by text DEFAULT NULL)
RETURNS TABLE (id bigint, args jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    IF p_args IS NULL OR cardinality(p_args) = 0 THEN
        RETURN;
    END IF;
    IF p_attempted_by IS NOT NULL THEN
        RETURN QUERY
        WITH jobs AS (
            INSERT INTO river.river_job (args, kind, max_attempts, queue, priority, state, attempt,
                                         attempted_at, attempted_by, scheduled_at)
            SELECT x.args, p_kind, 1, x.queue, x.priority, 'running', 1, now(), ARRAY[p_attempted_by], now()
              FROM unnest(p_args, p_queues, p_priorities) AS x(args, queue, priority)
            RETURNING river_job.id, river_job.args
        )
        SELECT j.id, j.args FROM jobs j;
        RETURN;
    END IF;

    RETURN QUERY
    WITH jobs AS (
        INSERT INTO river.river_job (args, kind, max_attempts, queue, priority, scheduled_at)
        SELECT x.args, p_kind, 1, x.queue, x.priority, greatest(now(), coalesce(x.scheduled_at, now()))
          FROM unnest(p_args, p_queues, p_priorities, p_scheduled_at) AS x(args, queue, priority, scheduled_at)
        RETURNING river_job.id, river_job.args
    )
    SELECT j.id, j.args FROM jobs j;

    FOR v_queue IN SELECT DISTINCT q FROM unnest(p_queues) q LOOP
        PERFORM pg_notify('river.river_insert', '{"queue": "' || v_queue || '"}');
    END LOOP;
END $$;
