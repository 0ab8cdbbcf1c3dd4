-- Queries of the model registry's views: the web view's /models pages and `qflow models`. Both
-- read the metrics the pipelines stored (ml.models.metrics: figures with intervals, the loss
-- curve, a predicted-vs-actual sample, the deployment decision), never the weights.

-- name: ListModels :many
-- Every version of every model (of one name, unless name is NULL), newest first within a name,
-- at most max_rows of them. The loss curve and the sample are left out of the metrics: a list
-- shows figures and decisions.
SELECT m.id, m.name, m.version, m.status, m.backend, m.decision, m.training_run_id,
       m.created_at, m.activated_at, m.retired_at,
       (m.metrics - 'curve' - 'sample')::jsonb AS metrics
  FROM ml.models m
 WHERE sqlc.narg(name)::text IS NULL OR m.name = sqlc.narg(name)::text
 ORDER BY m.name, m.version DESC
 LIMIT sqlc.arg(max_rows)::integer;

-- name: GetModel :one
-- One version of a model with everything but its weights, of which only the size.
SELECT m.id, m.name, m.version, m.status, m.backend, m.decision, m.training_run_id,
       m.created_at, m.activated_at, m.retired_at, m.metrics, m.architecture, m.normalization,
       octet_length(m.weights)::bigint AS weight_bytes
  FROM ml.models m
 WHERE m.name = @name AND m.version = @version;
