-- What a person asks with psql: views and functions over the state tables.

CREATE VIEW qflow.run_overview AS
SELECT r.id, r.workflow, r.version, r.mode, r.status, r.priority,
       r.created_at, r.started_at, r.finished_at, r.deadline,
       round(extract(epoch FROM (coalesce(r.finished_at, now()) - r.started_at)) * 1000)::bigint AS duration_ms,
       count(sr.step)                                            AS steps_total,
       count(sr.step) FILTER (WHERE sr.status = 'succeeded')     AS steps_succeeded,
       count(sr.step) FILTER (WHERE sr.status IN ('queued', 'running')) AS steps_active,
       count(sr.step) FILTER (WHERE sr.status = 'failed')        AS steps_failed,
       coalesce(sum(greatest(sr.attempt - 1, 0)), 0)             AS retries,
       r.error, r.input, r.output
  FROM qflow.runs r
  LEFT JOIN qflow.step_runs sr ON sr.run_id = r.id
 GROUP BY r.id;

CREATE VIEW qflow.step_overview AS
SELECT sr.run_id, sr.workflow, sr.version, s.position, sr.step, sr.status, s.worker_class,
       sr.attempt, s.max_attempts, sr.remaining_deps,
       sr.queued_at, sr.started_at, sr.finished_at, sr.next_attempt_at, sr.lease_expires_at, sr.worker,
       round(extract(epoch FROM (sr.finished_at - sr.started_at)) * 1000)::bigint AS duration_ms,
       sr.error, sr.output
  FROM qflow.step_runs sr
  JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step;

-- status: a run and every step, with attempts and timings, as one JSON document.
CREATE FUNCTION qflow.status(p_run_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc jsonb;
BEGIN
    SELECT jsonb_build_object(
               'id', r.id, 'workflow', r.workflow, 'version', r.version, 'mode', r.mode, 'status', r.status,
               'priority', r.priority, 'input', r.input, 'output', r.output, 'error', r.error,
               'created_at', r.created_at, 'started_at', r.started_at, 'finished_at', r.finished_at,
               'deadline', r.deadline,
               'duration_ms', round(extract(epoch FROM (coalesce(r.finished_at, now()) - r.started_at)) * 1000),
               'steps', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                              'step', so.step, 'status', so.status, 'worker_class', so.worker_class,
                              'attempt', so.attempt, 'max_attempts', so.max_attempts,
                              'queued_at', so.queued_at, 'started_at', so.started_at, 'finished_at', so.finished_at,
                              'next_attempt_at', so.next_attempt_at, 'duration_ms', so.duration_ms,
                              'worker', so.worker, 'error', so.error,
                              'attempts', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                                  'attempt', a.attempt, 'status', a.status, 'worker', a.worker,
                                                  'started_at', a.started_at, 'finished_at', a.finished_at,
                                                  'error', a.error) ORDER BY a.attempt), '[]')
                                             FROM qflow.step_attempts a
                                            WHERE a.run_id = so.run_id AND a.step = so.step))
                          ORDER BY so.position, so.step)
                     FROM qflow.step_overview so WHERE so.run_id = r.id), '[]'))
      INTO v_doc
      FROM qflow.runs r
     WHERE r.id = p_run_id;
    IF v_doc IS NULL THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_doc;
END $$;

-- metrics: what a run cost: execution time, per-step durations and queue waits, success and
-- error rate of its attempts, and steps per second.
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
               'steps_total', (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id),
               'steps_succeeded', (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id AND status = 'succeeded'),
               'attempts', a.total,
               'attempts_succeeded', a.succeeded,
               'attempts_failed', a.failed,
               'retries', greatest(a.total - (SELECT count(*) FROM qflow.step_runs WHERE run_id = p_run_id AND attempt > 0), 0),
               'success_rate', CASE WHEN a.finished > 0 THEN round(a.succeeded::numeric / a.finished, 4) END,
               'error_rate', CASE WHEN a.finished > 0 THEN round(a.failed::numeric / a.finished, 4) END,
               'steps_per_second', CASE WHEN v_exec > 0
                                        THEN round((SELECT count(*) FROM qflow.step_runs
                                                     WHERE run_id = p_run_id AND status = 'succeeded') / (v_exec / 1000)::numeric, 3) END,
               'step_duration_ms', coalesce((SELECT jsonb_object_agg(step, round(extract(epoch FROM (finished_at - started_at))::numeric * 1000, 3))
                                               FROM qflow.step_runs WHERE run_id = p_run_id AND status = 'succeeded'), '{}'),
               'step_queue_wait_ms', coalesce((SELECT jsonb_object_agg(step, round(extract(epoch FROM (started_at - queued_at))::numeric * 1000, 3))
                                                 FROM qflow.step_runs WHERE run_id = p_run_id AND started_at IS NOT NULL), '{}'))
      INTO v_doc
      FROM (SELECT count(*) AS total,
                   count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
                   count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'timed_out')) AS finished
              FROM qflow.step_attempts WHERE run_id = p_run_id) a;
    RETURN v_doc;
END $$;

-- list_workflows: every workflow with its current version, steps and runs by status.
CREATE FUNCTION qflow.list_workflows()
RETURNS TABLE (name text, version integer, steps text[], description text,
               pending bigint, running bigint, succeeded bigint, failed bigint, cancelled bigint, timed_out bigint)
LANGUAGE sql STABLE AS $$
    SELECT w.name, w.version,
           (SELECT array_agg(s.name ORDER BY s.position) FROM qflow.steps s WHERE s.workflow = w.name AND s.version = w.version),
           w.description,
           count(*) FILTER (WHERE r.status = 'pending'),
           count(*) FILTER (WHERE r.status = 'running'),
           count(*) FILTER (WHERE r.status = 'succeeded'),
           count(*) FILTER (WHERE r.status = 'failed'),
           count(*) FILTER (WHERE r.status = 'cancelled'),
           count(*) FILTER (WHERE r.status = 'timed_out')
      FROM (SELECT DISTINCT ON (name) * FROM qflow.workflows ORDER BY name, version DESC) w
      LEFT JOIN qflow.runs r ON r.workflow = w.name
     GROUP BY w.name, w.version, w.description
     ORDER BY w.name;
$$;
