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
