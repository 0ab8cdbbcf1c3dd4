-- fire_schedule takes the fire of schedule p_name due at p_due: with p_run it starts the
-- fire's run (p_run false: a missed fire skipped), and records the fire as the schedule's last.
-- Every worker may call it for the same fire at once: the schedule's row lock makes them take
-- turns and all but the first find the fire taken; and the fire's key, the run's idempotency
-- key, makes a second run of one fire impossible whatever happens to last_fire_at. Returns the
-- run's id, or NULL when nothing was started.
CREATE FUNCTION qflow.fire_schedule(p_name text, p_due timestamptz, p_run boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_s  qflow.schedules;
    v_id bigint;
BEGIN
    SELECT * INTO v_s FROM qflow.schedules WHERE name = p_name FOR UPDATE;
    IF NOT FOUND OR NOT v_s.enabled OR v_s.last_fire_at >= p_due THEN
        RETURN NULL;
    END IF;
    IF p_run THEN
        INSERT INTO qflow.runs (workflow, input, idempotency_key, schedule)
        VALUES (v_s.workflow, v_s.input,
                format('schedule:%s:%s', p_name, to_char(p_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), p_name)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id INTO v_id;
    END IF;
    UPDATE qflow.schedules
       SET last_fire_at = p_due, last_run_id = coalesce(v_id, last_run_id), error = NULL
     WHERE name = p_name;
    RETURN v_id;
END $$;
