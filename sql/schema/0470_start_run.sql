-- start_run is the function form of the INSERT. With an idempotency key that was used
-- before, it starts nothing and returns the earlier run's id.
CREATE FUNCTION qflow.start_run(p_workflow text, p_input jsonb DEFAULT '{}', p_idempotency_key text DEFAULT NULL,
                                p_priority smallint DEFAULT 2)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO qflow.runs (workflow, input, idempotency_key, priority)
    VALUES (p_workflow, coalesce(p_input, '{}'), p_idempotency_key, p_priority)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM qflow.runs WHERE idempotency_key = p_idempotency_key;
    END IF;
    RETURN v_id;
END $$;
