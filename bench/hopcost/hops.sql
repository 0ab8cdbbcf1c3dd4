-- One run at a time: a probe_chain run is inserted, its first step claimed, and each step
-- completed with its slot offered (eager dispatch) until the run has succeeded -- the calls a
-- worker makes, in the order it makes them, one transaction each. River's fetch is stood in for
-- by marking the first job running. The number of runs is the setting hopcost.runs.
DO $$
DECLARE
    v_run  bigint;
    v_step text;
    v_att  integer;
    v_job  bigint;
    v_next record;
BEGIN
    FOR i IN 1..current_setting('hopcost.runs')::integer LOOP
        INSERT INTO qflow.runs (workflow) VALUES ('probe_chain') RETURNING id INTO v_run;
        COMMIT;
        SELECT sr.step, sr.attempt, sr.job_id INTO v_step, v_att, v_job
          FROM qflow.step_runs sr WHERE sr.run_id = v_run AND sr.status = 'queued';
        UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = v_job;
        COMMIT;
        PERFORM * FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', v_run, 'step', v_step, 'attempt', v_att)), 'w1');
        COMMIT;
        LOOP
            SELECT f.next_step, f.next_attempt, f.next_job_id INTO v_next
              FROM qflow.finish_steps(jsonb_build_array(jsonb_build_object('run_id', v_run, 'step', v_step, 'attempt', v_att,
                   'job_id', v_job, 'result', 'complete', 'output', '{"x": 1}'::jsonb, 'take', true)), 'w1', '{cpu}') f;
            COMMIT;
            EXIT WHEN v_next.next_step IS NULL;
            v_step := v_next.next_step; v_att := v_next.next_attempt; v_job := v_next.next_job_id;
        END LOOP;
    END LOOP;
    IF (SELECT count(*) FROM qflow.runs WHERE status <> 'succeeded') > 0 THEN
        RAISE EXCEPTION 'hopcost: a run did not succeed';
    END IF;
END $$;
