-- metrics: what a run cost: execution time, per-step durations and queue waits, success and
-- error rate of its attempts, and steps per second. Steps are the definition's (a map step
-- once, its duration the map's); tasks_succeeded and steps_per_second count what ran: every
-- element of a map step, and every other step.
CREATE FUNCTION qflow.metrics(p_run_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_run qflow.runs;
    v_exec double precision;
    v_doc jsonb;
BEGIN
    SELECT * INTO v_run FROM qflow.runs WHERE id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    v_exec := extract(epoch FROM (coalesce(v_run.finished_at, now()) - v_run.started_at)) * 1000;

    SELECT jsonb_build_object(
               'run_id', v_run.id, 'workflow', v_run.workflow, 'mode', v_run.mode, 'status', v_run.status,
               'execution_ms', round(v_exec::numeric, 3),
               'steps_total', (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id AND task IS NULL),
               'steps_succeeded', (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id AND task IS NULL AND status = 'succeeded'),
               'tasks_succeeded', (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id AND tasks IS NULL AND status = 'succeeded'),
               'attempts', a.total,
               'attempts_succeeded', a.succeeded,
               'attempts_failed', a.failed,
               'retries', greatest(a.total - (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id AND attempt > 0 AND tasks IS NULL), 0),
               'success_rate', CASE WHEN a.finished > 0 THEN round(a.succeeded::numeric / a.finished, 4) END,
               'error_rate', CASE WHEN a.finished > 0 THEN round(a.failed::numeric / a.finished, 4) END,
               'steps_per_second', CASE WHEN v_exec > 0
                                        THEN round((SELECT count(*) FROM qflow.step_runs
                                                     WHERE run_id = p_run_id AND tasks IS NULL AND status = 'succeeded') / (v_exec / 1000)::numeric, 3) END,
               'step_duration_ms', coalesce((SELECT jsonb_object_agg(step, round(extract(epoch FROM (finished_at - started_at))::numeric * 1000, 3))
                                               FROM qflow.step_runs WHERE run_id = p_run_id AND task IS NULL AND status = 'succeeded'), '{}'),
               'step_queue_wait_ms', coalesce((SELECT jsonb_object_agg(step, round(extract(epoch FROM (started_at - queued_at))::numeric * 1000, 3))
                                                 FROM qflow.step_runs WHERE run_id = p_run_id AND task IS NULL AND started_at IS NOT NULL), '{}'))
      INTO v_doc
      FROM (SELECT count(*) AS total,
                   count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
                   count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'timed_out')) AS finished
              FROM qflow.step_attempts WHERE run_id = p_run_id) a;
    RETURN v_doc;
END $$;
