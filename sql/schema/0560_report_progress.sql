-- report_progress records what running attempts say about how far they got: entries are
-- {run_id, step, attempt, progress}, progress being a JSON object (pipelines.Progress: done,
-- total, unit, message, metrics, eta_ms, attempt). Only an attempt that is running, on the
-- worker sending it, is written: a late report of a finished or superseded attempt changes
-- nothing. The worker keeps each attempt's latest report and sends them together every couple
-- of seconds, so a handler reporting every millisecond costs the database nothing more.
-- Progress is advisory: it commits without waiting for the WAL flush. Returns how many
-- attempts were written.
CREATE FUNCTION qflow.report_progress(p_worker text, p_reports jsonb)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE qflow.step_runs sr
       SET progress = x.progress, progress_at = now()
      FROM jsonb_to_recordset(p_reports) AS x(run_id bigint, step text, attempt integer, progress jsonb)
     WHERE sr.run_id = x.run_id AND sr.step = x.step AND sr.attempt = x.attempt
       AND sr.status = 'running' AND sr.worker = p_worker AND jsonb_typeof(x.progress) = 'object';
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;
