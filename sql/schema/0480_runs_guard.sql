-- Guards: what no statement may write, whoever issues it (psql, a script, a bug).
--
-- The procedures move runs and steps along the state machine; the guards below make every
-- other move unwritable. They sit on the hot path, so a trigger's WHEN clause lists the moves
-- the procedures make, evaluated without calling anything; the guard function runs only to
-- reject a move, or for the one move that needs more than the row: a finished run or step
-- coming back to life, which only qflow.retry_run may do.
--
-- The moves are one array constant of 'from>to' pairs, not a tree of comparisons: Postgres
-- reads a WHEN clause (and every CHECK constraint) back from its stored text at the start of
-- each statement that writes the table, and the text of a tree of comparisons was the largest
-- single cost of a hop's statements (6,749 characters for step_runs' moves, 2,542 as an array).
--
-- Runs:   pending -> running | failed | cancelled | timed_out
--         running -> succeeded | failed | cancelled | timed_out | pending (legacy retry)
--         failed | cancelled | timed_out -> running (workflow) | pending (legacy)   retry_run only
--         a run never changes mode; succeeded is final.

CREATE FUNCTION qflow.runs_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.mode IS DISTINCT FROM NEW.mode THEN
        RAISE EXCEPTION 'qflow: run % cannot change mode from % to %', OLD.id, OLD.mode, NEW.mode
            USING ERRCODE = 'check_violation',
                  HINT = 'a run keeps the mode it started in; qflow.rollouts decides the mode of new runs';
    END IF;
    IF OLD.status IN ('failed', 'cancelled', 'timed_out')
       AND ((NEW.mode = 'workflow' AND NEW.status = 'running') OR (NEW.mode = 'legacy' AND NEW.status = 'pending'))
       AND current_setting('qflow.retrying', true) = NEW.id::text THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'qflow: run % cannot go from % to %', OLD.id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation',
              HINT = CASE WHEN OLD.status IN ('failed', 'cancelled', 'timed_out')
                          THEN format('SELECT qflow.retry_run(%s) runs it again', OLD.id)
                          WHEN OLD.status = 'succeeded' THEN 'a succeeded run is final'
                          ELSE 'qflow.cancel_run stops a live run' END;
END $$;

CREATE TRIGGER runs_guard BEFORE UPDATE ON qflow.runs
    FOR EACH ROW
    WHEN (OLD.mode IS DISTINCT FROM NEW.mode
          OR (OLD.status IS DISTINCT FROM NEW.status
              AND NOT (OLD.status || '>' || NEW.status) = ANY ('{pending>running,pending>failed,pending>cancelled,pending>timed_out,running>succeeded,running>failed,running>cancelled,running>timed_out}'::text[])
              AND NOT (OLD.status = 'running' AND NEW.status = 'pending' AND NEW.mode = 'legacy')))
    EXECUTE FUNCTION qflow.runs_guard();
