-- The sweep's search for lost step jobs, at a cost that no longer grows with the backlog.
--
-- A queued step whose River job can no longer run it is queued again (sweep_lost_job, 015).
-- Until now each sweep, every second, joined every queued step with its job: 50 ms with 20,000
-- steps queued, growing with the backlog and with River's job table. Each sweep now looks only
-- where lost jobs come from, through River's indexes on job state:
--
--   - a worker fetched the job and died before claiming its step: the job has been running for
--     30 seconds and the step is still queued with it (as before);
--   - the job was finalized in the last hour while its step still waits for it: River
--     discarded it after an infrastructure error, or somebody cancelled it.
--
-- Everything else (a job deleted by hand, completed without its step, finalized longer ago)
-- is rare enough for the complete search, which now runs every 5 minutes.

CREATE TABLE qflow.sweep_state (
    id           boolean     PRIMARY KEY DEFAULT true CHECK (id),
    -- when the sweep last searched every queued step for a lost job
    full_scan_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO qflow.sweep_state DEFAULT VALUES;

-- sweep_full_scan_due says whether the complete search is due (last run p_every ago or more)
-- and, when it is, records that it runs now.
CREATE FUNCTION qflow.sweep_full_scan_due(p_every interval)
RETURNS boolean
LANGUAGE sql AS $$
    WITH due AS (
        UPDATE qflow.sweep_state SET full_scan_at = now() WHERE full_scan_at <= now() - p_every RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM due)
$$;

INSERT INTO qflow.procedure_access (name, roles, definer) VALUES ('sweep_full_scan_due', '{worker}', true);

-- sweep (015), with the search for lost jobs above.
CREATE OR REPLACE PROCEDURE qflow.sweep(INOUT timed_out_runs integer DEFAULT 0, INOUT expired_leases integer DEFAULT 0,
                                        INOUT requeued_steps integer DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_row record;
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

    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt FROM qflow.step_runs sr
         WHERE sr.status = 'running' AND sr.lease_expires_at < now()
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.sweep_lease(v_row.run_id, v_row.step, v_row.attempt) THEN
            expired_leases := expired_leases + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- Lost jobs, where they come from: found from the job's side, by state.
    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt, sr.job_id
          FROM river.river_job j
          JOIN qflow.step_runs sr ON sr.run_id = (j.args ->> 'run_id')::bigint AND sr.step = j.args ->> 'step'
         WHERE j.kind = 'qflow_step'
           AND ((j.state = 'running' AND j.attempted_at < now() - interval '30 seconds')
                OR (j.state IN ('discarded', 'cancelled') AND j.finalized_at > now() - interval '1 hour'))
           AND sr.status = 'queued' AND sr.job_id = j.id
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.sweep_lost_job(v_row.run_id, v_row.step, v_row.attempt, v_row.job_id) THEN
            requeued_steps := requeued_steps + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- Every queued step, every 5 minutes: its job gone, finalized (any state, any time ago),
    -- or fetched and never claimed.
    IF qflow.sweep_full_scan_due(interval '5 minutes') THEN
        COMMIT;
        FOR v_row IN
            SELECT sr.run_id, sr.step, sr.attempt, sr.job_id FROM qflow.step_runs sr
              LEFT JOIN river.river_job j ON j.id = sr.job_id
             WHERE sr.status = 'queued'
               AND (j.id IS NULL
                    OR j.state NOT IN ('available', 'scheduled', 'retryable', 'running', 'pending')
                    OR (j.state = 'running' AND j.attempted_at < now() - interval '30 seconds'))
             ORDER BY sr.run_id LIMIT 1000
        LOOP
            IF qflow.sweep_lost_job(v_row.run_id, v_row.step, v_row.attempt, v_row.job_id) THEN
                requeued_steps := requeued_steps + 1;
            END IF;
            COMMIT;
        END LOOP;
    END IF;

    PERFORM qflow.sweep_orphaned_jobs();
    COMMIT;

    FOR v_row IN
        SELECT DISTINCT sr.workflow, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.status = 'ready' AND s.max_concurrency IS NOT NULL
    LOOP
        PERFORM qflow.sweep_limited(v_row.workflow, v_row.step);
        COMMIT;
    END LOOP;

    DELETE FROM qflow.workers WHERE last_seen_at < now() - interval '1 hour';
END $$;
