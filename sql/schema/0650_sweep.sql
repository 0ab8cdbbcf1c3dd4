-- sweep is run twice a second by one worker of the fleet: every worker tries, and the one that
-- gets the sweep's advisory lock runs it (worker/liveness.go), so no election and no dead
-- leader stands between a death and its recovery. It times out runs past their deadline
-- (0600_sweep_deadline.sql); gives up and retries attempts whose worker died or whose lease
-- expired (0610_sweep_lease.sql) and legacy runs whose worker died (0615_sweep_legacy.sql);
-- queues again steps whose job was lost (0625_lost_step_jobs.sql, 0620_sweep_lost_job.sql);
-- cancels orphaned running jobs (0630_sweep_orphaned_jobs.sql); hands out concurrency slots
-- that nobody handed on (0640_sweep_limited.sql); deletes finished runs past their retention
-- (0960_prune_runs.sql); and analyzes hot tables a burst has outgrown
-- (0645_analyze_grown_tables.sql).
-- It finds work with plain reads, changes nothing itself but its
-- worker registry, and commits after each item, so it never holds many run locks at once (and
-- cannot deadlock with workers). It cannot be SECURITY DEFINER (Postgres forbids COMMIT there):
-- each piece is. expired_leases counts the attempts and legacy runs it gave up.
CREATE PROCEDURE qflow.sweep(INOUT timed_out_runs integer DEFAULT 0, INOUT expired_leases integer DEFAULT 0,
                             INOUT requeued_steps integer DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_row     record;
    v_dead    text[];
    v_started timestamptz;
    v_pruned  integer;
BEGIN
    timed_out_runs := 0;
    expired_leases := 0;
    requeued_steps := 0;
    FOR v_row IN
        SELECT id FROM qflow.runs
         WHERE status IN ('pending', 'running') AND deadline < now()
         ORDER BY id LIMIT 1000
    LOOP
        IF qflow.sweep_deadline(v_row.id) THEN
            timed_out_runs := timed_out_runs + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- The workers of running attempts and jobs, and the registered ones, that are gone: one
    -- read of the lock table.
    v_dead := qflow.dead_workers(ARRAY(
        SELECT DISTINCT sr.worker FROM qflow.step_runs sr WHERE sr.status = 'running'
        UNION
        SELECT DISTINCT j.attempted_by[cardinality(j.attempted_by)] FROM river.river_job j
         WHERE j.state = 'running' AND j.kind IN ('qflow_step', 'qflow_legacy')
        UNION
        SELECT w.id FROM qflow.workers w));
    -- A session cut while its process lives (a dropped connection, pg_terminate_backend, a
    -- Postgres restart) is back within a second or so: a registered worker is given up only
    -- once its lock has been free for 1.5 s, so that a blip does not throw away an hour of
    -- training. A process that died is given up about 2 s after its death.
    UPDATE qflow.workers w
       SET dead_since = CASE WHEN w.id = ANY (v_dead) THEN coalesce(w.dead_since, now()) END
     WHERE (w.id = ANY (v_dead)) <> (w.dead_since IS NOT NULL);
    COMMIT;
    v_dead := ARRAY(SELECT d FROM unnest(v_dead) AS d
                     WHERE NOT EXISTS (SELECT 1 FROM qflow.workers w
                                        WHERE w.id = d AND w.dead_since > now() - interval '1.5 seconds'));

    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt, sr.worker = ANY (v_dead) AS dead FROM qflow.step_runs sr
         WHERE sr.status = 'running' AND (sr.lease_expires_at < now() OR sr.worker = ANY (v_dead))
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.sweep_lease(v_row.run_id, v_row.step, v_row.attempt, v_row.dead) THEN
            expired_leases := expired_leases + 1;
        END IF;
        COMMIT;
    END LOOP;

    FOR v_row IN
        SELECT (j.args ->> 'run_id')::bigint AS run_id, (j.args ->> 'attempt')::integer AS attempt, j.id,
               j.attempted_by[cardinality(j.attempted_by)] AS worker
          FROM river.river_job j
         WHERE j.state = 'running' AND j.kind = 'qflow_legacy'
           AND j.attempted_by[cardinality(j.attempted_by)] = ANY (v_dead)
         ORDER BY j.id LIMIT 1000
    LOOP
        IF qflow.sweep_legacy(v_row.run_id, v_row.attempt, v_row.id, v_row.worker) THEN
            expired_leases := expired_leases + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- Queued steps whose job can no longer run them (0625_lost_step_jobs.sql) are queued again.
    FOR v_row IN SELECT * FROM qflow.lost_step_jobs(v_dead)
    LOOP
        IF qflow.sweep_lost_job(v_row.run_id, v_row.step, v_row.attempt, v_row.job_id) THEN
            requeued_steps := requeued_steps + 1;
        END IF;
        COMMIT;
    END LOOP;

    PERFORM qflow.sweep_orphaned_jobs(v_dead);
    COMMIT;

    FOR v_row IN
        SELECT DISTINCT sr.workflow, sr.def_step AS step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
         WHERE sr.status = 'ready' AND s.max_concurrency IS NOT NULL
    LOOP
        PERFORM qflow.sweep_limited(v_row.workflow, v_row.step);
        COMMIT;
    END LOOP;

    -- Finished runs past their retention, in batches of 500, a committed batch at a time, for
    -- at most half a second a sweep: a thousand runs a second or more.
    v_started := clock_timestamp();
    LOOP
        v_pruned := qflow.prune_runs(500);
        COMMIT;
        EXIT WHEN v_pruned < 500 OR clock_timestamp() > v_started + interval '500 milliseconds';
    END LOOP;

    -- Hot tables whose statistics a burst has outgrown are analyzed (0645_analyze_grown_tables.sql).
    PERFORM qflow.analyze_grown_tables();
    COMMIT;

    -- A worker's row goes with the worker: its session has ended and its heartbeat stopped.
    DELETE FROM qflow.workers w
     WHERE w.dead_since < now() - interval '15 seconds' AND w.last_seen_at < now() - interval '15 seconds';
END $$;
