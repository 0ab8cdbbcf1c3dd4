-- refuse_schedule records why the workers' cron library refused a schedule's expression; the
-- schedule does not fire until the row is corrected (which clears it: 0750_fire_schedule.sql).
CREATE FUNCTION qflow.refuse_schedule(p_name text, p_error text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE qflow.schedules SET error = p_error WHERE name = p_name AND error IS DISTINCT FROM p_error;
END $$;
