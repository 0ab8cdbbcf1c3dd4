-- rerun_from forks a finished run (succeeded, failed, cancelled or timed out) from one of its
-- steps: a new run of the same workflow version, input and priority that reuses the outputs of
-- every step not downstream of p_step and runs p_step and everything after it (a run that
-- failed at evaluation re-runs from evaluation without retraining). The new run records where
-- it came from (forked_from, forked_step); its step rows are made by fork_steps
-- (0465_fork_steps.sql). Returns the new run's id.
CREATE FUNCTION qflow.rerun_from(p_run_id bigint, p_step text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_src qflow.runs;
    v_id  bigint;
BEGIN
    SELECT * INTO v_src FROM qflow.runs WHERE id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    IF v_src.status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out') THEN
        RAISE EXCEPTION 'qflow: run % is %: only a finished run can be forked', p_run_id, v_src.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('SELECT qflow.cancel_run(%s) stops it first', p_run_id);
    END IF;
    IF v_src.mode = 'legacy' THEN
        RAISE EXCEPTION 'qflow: run % ran in legacy mode and kept no step outputs to reuse', p_run_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('SELECT qflow.retry_run(%s) runs it again', p_run_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM qflow.steps WHERE workflow = v_src.workflow AND version = v_src.version AND name = p_step) THEN
        RAISE EXCEPTION 'qflow: workflow % version % has no step %', v_src.workflow, v_src.version, coalesce(quote_literal(p_step), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = (SELECT 'its steps: ' || string_agg(name, ', ' ORDER BY position) FROM qflow.steps
                           WHERE workflow = v_src.workflow AND version = v_src.version);
    END IF;
    INSERT INTO qflow.runs (workflow, version, input, priority, forked_from, forked_step)
    VALUES (v_src.workflow, v_src.version, v_src.input, v_src.priority, p_run_id, p_step)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;
