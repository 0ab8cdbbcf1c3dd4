-- status: a run and every step, with attempts and timings, as one JSON document. A map step
-- carries "map": its element count, how many are in each status, and the errors of up to five
-- failed elements (qflow.step_overview lists every element); a step whose output came from the
-- cache has "cached": true.
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
               'deadline', r.deadline, 'schedule', r.schedule,
               'forked_from', r.forked_from, 'forked_step', r.forked_step,
               'duration_ms', round(extract(epoch FROM (coalesce(r.finished_at, now()) - r.started_at)) * 1000),
               'steps', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                              'step', so.step, 'status', so.status, 'worker_class', so.worker_class,
                              'attempt', so.attempt, 'max_attempts', so.max_attempts,
                              'queued_at', so.queued_at, 'started_at', so.started_at, 'finished_at', so.finished_at,
                              'next_attempt_at', so.next_attempt_at, 'duration_ms', so.duration_ms,
                              'worker', so.worker, 'error', so.error,
                              'progress', so.progress, 'progress_at', so.progress_at,
                              'cached', EXISTS (SELECT 1 FROM qflow.step_attempts a
                                                 WHERE a.run_id = so.run_id AND a.step = so.step
                                                   AND a.attempt = so.attempt AND a.status = 'cached'),
                              'map', CASE WHEN so.tasks IS NOT NULL THEN jsonb_build_object(
                                         'elements', so.tasks, 'remaining', so.remaining_tasks,
                                         'by_status', (SELECT coalesce(jsonb_object_agg(x.status, x.n), '{}')
                                                         FROM (SELECT e.status, count(*) AS n FROM qflow.step_runs e
                                                                WHERE e.run_id = so.run_id AND e.def_step = so.step
                                                                  AND e.task IS NOT NULL
                                                                GROUP BY e.status) x),
                                         'failed', (SELECT coalesce(jsonb_agg(jsonb_build_object('element', f.task, 'error', f.error)
                                                                              ORDER BY f.task), '[]')
                                                      FROM (SELECT e.task, e.error FROM qflow.step_runs e
                                                             WHERE e.run_id = so.run_id AND e.def_step = so.step
                                                               AND e.task IS NOT NULL AND e.status = 'failed'
                                                             ORDER BY e.task LIMIT 5) f)) END,
                              'attempts', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                                  'attempt', a.attempt, 'status', a.status, 'worker', a.worker,
                                                  'started_at', a.started_at, 'finished_at', a.finished_at,
                                                  'error', a.error) ORDER BY a.attempt), '[]')
                                             FROM qflow.step_attempts a
                                            WHERE a.run_id = so.run_id AND a.step = so.step))
                          ORDER BY so.position, so.step)
                     FROM qflow.step_overview so WHERE so.run_id = r.id AND so.task IS NULL), '[]'))
      INTO v_doc
      FROM qflow.runs r
     WHERE r.id = p_run_id;
    IF v_doc IS NULL THEN
        RAISE EXCEPTION 'qflow: run % does not exist', p_run_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_doc;
END $$;
