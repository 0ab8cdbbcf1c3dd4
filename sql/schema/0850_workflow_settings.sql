-- workflow_settings: every step of every workflow's current version with the settings that
-- govern it, the run deadline and the rollout (the mode new runs get).
CREATE VIEW qflow.workflow_settings AS
SELECT w.name AS workflow, w.version, w.timeout_ms AS workflow_timeout_ms,
       coalesce(r.enabled, true) AS rollout_enabled,
       coalesce(r.canary_percent, 100) AS canary_percent,
       CASE WHEN r.workflow IS NULL THEN 'no rollout row: every run in workflow mode'
            WHEN NOT r.enabled THEN 'every run in legacy mode'
            ELSE format('%s%% of runs in workflow mode, the rest legacy', r.canary_percent) END AS rollout,
       s.position, s.name AS step, s.worker_class, s.timeout_ms, s.max_attempts, s.retry_base_ms, s.retry_max_ms,
       s.max_concurrency
  FROM (SELECT DISTINCT ON (name) * FROM qflow.workflows ORDER BY name, version DESC) w
  JOIN qflow.steps s ON s.workflow = w.name AND s.version = w.version
  LEFT JOIN qflow.rollouts r ON r.workflow = w.name;
