-- Ten runs at a time, as a busy worker batches them: one INSERT of ten probe_chain runs, one
-- claim_steps call for their first steps, then one finish_steps call per hop for all ten, each
-- result offering its slot. The number of runs (a multiple of ten) is the setting hopcost.runs.
DO $$
DECLARE
    v_ids     bigint[];
    v_claims  jsonb;
    v_results jsonb;
BEGIN
    FOR i IN 1..current_setting('hopcost.runs')::integer / 10 LOOP
        WITH ins AS (INSERT INTO qflow.runs (workflow) SELECT 'probe_chain' FROM generate_series(1, 10) RETURNING id)
        SELECT array_agg(id) INTO v_ids FROM ins;
        COMMIT;
        UPDATE river.river_job j SET state = 'running', attempt = 1, attempted_at = now()
          FROM qflow.step_runs sr WHERE sr.run_id = ANY (v_ids) AND sr.status = 'queued' AND j.id = sr.job_id;
        SELECT jsonb_agg(jsonb_build_object('run_id', sr.run_id, 'step', sr.step, 'attempt', sr.attempt)) INTO v_claims
          FROM qflow.step_runs sr WHERE sr.run_id = ANY (v_ids) AND sr.status = 'queued';
        COMMIT;
        PERFORM * FROM qflow.claim_steps(v_claims, 'w1');
        COMMIT;
        LOOP
            SELECT jsonb_agg(jsonb_build_object('run_id', sr.run_id, 'step', sr.step, 'attempt', sr.attempt, 'job_id', sr.job_id,
                                                'result', 'complete', 'output', '{"x": 1}'::jsonb, 'take', true)) INTO v_results
              FROM qflow.step_runs sr WHERE sr.run_id = ANY (v_ids) AND sr.status = 'running';
            EXIT WHEN v_results IS NULL;
            PERFORM * FROM qflow.finish_steps(v_results, 'w1', '{cpu}');
            COMMIT;
        END LOOP;
    END LOOP;
    IF (SELECT count(*) FROM qflow.runs WHERE status <> 'succeeded') > 0 THEN
        RAISE EXCEPTION 'hopcost: a run did not succeed';
    END IF;
END $$;
