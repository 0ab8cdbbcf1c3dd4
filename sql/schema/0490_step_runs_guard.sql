-- step_runs_guard: the moves of a step row (see 0480_runs_guard.sql for how guards work).
--
-- Steps:  inserted as waiting, ready or skipped (a root whose condition is false), or as
--         succeeded or skipped when a forked run reuses its source's step (0465_fork_steps.sql)
--         waiting -> ready | skipped (every dependency skipped, or its condition false) | cancelled
--         ready   -> queued | running (eager dispatch; a map step's elements inserted) | cancelled
--                    | succeeded (a cache hit, an empty map) | failed | skipped (a map over no array)
--         queued  -> running | ready (job lost) | cancelled
--         running -> succeeded | failed | skipped | ready (retry, release) | cancelled
--         failed | cancelled -> waiting | running (a map step, its failed elements again)
--                                 retry_run only; succeeded and skipped are final.

CREATE FUNCTION qflow.step_runs_guard()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'qflow: step % of run % cannot start as %', NEW.step, NEW.run_id, NEW.status
            USING ERRCODE = 'check_violation',
                  HINT = 'step rows are created waiting or ready by the run''s start';
    END IF;
    IF OLD.status IN ('failed', 'cancelled') AND NEW.status IN ('waiting', 'running')
       AND current_setting('qflow.retrying', true) = NEW.run_id::text THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'qflow: step % of run % cannot go from % to %', OLD.step, OLD.run_id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation',
              HINT = CASE WHEN OLD.status IN ('failed', 'cancelled')
                          THEN format('SELECT qflow.retry_run(%s) runs failed and cancelled steps again', OLD.run_id)
                          WHEN OLD.status IN ('succeeded', 'skipped') THEN format('a %s step is final', OLD.status)
                          ELSE 'steps move waiting -> ready -> queued -> running -> succeeded | failed | skipped' END;
END $$;

CREATE TRIGGER step_runs_start_guard BEFORE INSERT ON qflow.step_runs
    FOR EACH ROW
    WHEN (NEW.status <> ALL ('{waiting,ready,skipped}'::text[]) AND NOT (NEW.status = 'succeeded' AND NEW.output IS NOT NULL
                                                                 AND current_setting('qflow.forking', true) = NEW.run_id::text))
    EXECUTE FUNCTION qflow.step_runs_guard();

CREATE TRIGGER step_runs_guard BEFORE UPDATE ON qflow.step_runs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND NOT (OLD.status || '>' || NEW.status) = ANY ('{waiting>ready,waiting>skipped,waiting>cancelled,ready>queued,ready>running,ready>cancelled,ready>succeeded,ready>failed,ready>skipped,queued>running,queued>ready,queued>cancelled,running>succeeded,running>failed,running>skipped,running>ready,running>cancelled}'::text[]))
    EXECUTE FUNCTION qflow.step_runs_guard();
