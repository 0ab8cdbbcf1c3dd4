-- step_attempts_guard (see 0480_runs_guard.sql for how guards work):
--   running -> succeeded | failed | timed_out | cancelled; a finished attempt is history.

CREATE FUNCTION qflow.step_attempts_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qflow: attempt % of step % of run % is % and cannot become %',
                    OLD.attempt, OLD.step, OLD.run_id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation', HINT = 'a finished attempt is history';
END $$;

CREATE TRIGGER step_attempts_guard BEFORE UPDATE ON qflow.step_attempts
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND OLD.status <> 'running')
    EXECUTE FUNCTION qflow.step_attempts_guard();
