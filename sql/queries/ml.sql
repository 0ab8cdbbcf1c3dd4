-- Queries of the ML pipelines (pipelines/ml, complexity, architecture), `qflow seed-data` and
-- the rollout settings workers apply from their environment (pipelines/rollout).


-- name: InsertTaskExecutions :execrows
-- Arrays unnested in lockstep rather than COPY, so that gen.DBTX stays the plain interface.
-- A user_satisfaction of 0 and an observed_complexity below 0 stand for NULL.
INSERT INTO ml.task_executions (task_type, model, context_length, output_tokens, parameter_count,
                                input_price, output_price, uses_tools, uses_vision, duration_ms, success,
                                quality_score, user_satisfaction, observed_complexity, executed_at)
SELECT t.task_type, t.model, t.context_length, t.output_tokens, t.parameter_count,
       t.input_price, t.output_price, t.uses_tools, t.uses_vision, t.duration_ms, t.success,
       t.quality_score, nullif(t.user_satisfaction, 0), CASE WHEN t.observed_complexity >= 0 THEN t.observed_complexity END,
       t.executed_at
  FROM (SELECT unnest(@task_types::text[]) AS task_type, unnest(@models::text[]) AS model,
               unnest(@context_lengths::integer[]) AS context_length, unnest(@output_tokens::integer[]) AS output_tokens,
               unnest(@parameter_counts::bigint[]) AS parameter_count,
               unnest(@input_prices::double precision[]) AS input_price,
               unnest(@output_prices::double precision[]) AS output_price,
               unnest(@uses_tools::boolean[]) AS uses_tools, unnest(@uses_vision::boolean[]) AS uses_vision,
               unnest(@duration_ms::integer[]) AS duration_ms, unnest(@successes::boolean[]) AS success,
               unnest(@quality_scores::double precision[]) AS quality_score,
               unnest(@user_satisfactions::smallint[]) AS user_satisfaction,
               unnest(@observed_complexities::double precision[]) AS observed_complexity,
               unnest(@executed_ats::timestamptz[]) AS executed_at) t;

-- name: CountTaskExecutions :one
SELECT count(*) AS total, count(observed_complexity) AS labelled, count(predicted_complexity) AS predicted
  FROM ml.task_executions;

-- name: CollectTaskExecutions :many
-- The labelled records of the last days, newest first, at most max_rows of them: what was known
-- when each task was submitted, and the label. Nothing a task's run produced (the model chosen,
-- tokens, duration, success, quality, satisfaction) is read: the score is wanted before the run.
SELECT id, task_type, context_length, uses_tools, uses_vision,
       observed_complexity::double precision AS observed_complexity
  FROM ml.task_executions
 WHERE executed_at >= now() - make_interval(days => @days_back::integer)
   AND observed_complexity IS NOT NULL
 ORDER BY executed_at DESC, id DESC
 LIMIT @max_rows::integer;

-- name: UnpredictedTaskExecutions :many
-- The next batch of records without a predicted complexity, labelled or not: their tasks as
-- submitted.
SELECT id, task_type, context_length, uses_tools, uses_vision
  FROM ml.task_executions
 WHERE predicted_complexity IS NULL AND id > @after_id::bigint
 ORDER BY id
 LIMIT @batch_size::integer;

-- name: SetPredictedComplexity :execrows
UPDATE ml.task_executions t
   SET predicted_complexity = p.score, predicted_by = @model_id::bigint
  FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@scores::double precision[]) AS score) p
 WHERE t.id = p.id AND t.predicted_complexity IS NULL;


-- name: PutArtifact :one
INSERT INTO ml.artifacts (run_id, name, kind, rows, cols, data, meta)
VALUES (@run_id, @name, @kind, sqlc.narg(rows), sqlc.narg(cols), @data, @meta)
ON CONFLICT (run_id, name) DO UPDATE
   SET kind = excluded.kind, rows = excluded.rows, cols = excluded.cols, data = excluded.data,
       meta = excluded.meta, created_at = now()
RETURNING id;

-- name: GetArtifact :one
SELECT id, name, kind, rows, cols, data, meta
  FROM ml.artifacts
 WHERE id = @id AND run_id = @run_id;

-- name: GetArtifactByName :one
-- A step's own artifact by name: its retry, which gets no output of the earlier attempt, finds
-- its checkpoint this way ((run_id, name) is unique).
SELECT id, name, kind, rows, cols, data, meta
  FROM ml.artifacts
 WHERE run_id = @run_id AND name = @name;

-- name: PruneArtifacts :execrows
-- Artifacts of runs that finished (whatever their status) longer ago than the retention.
DELETE FROM ml.artifacts a
 USING qflow.runs r
 WHERE r.id = a.run_id AND r.finished_at < now() - make_interval(secs => @retention_seconds::double precision);


-- name: LockModelName :exec
-- Deployments of one model name take turns, so versions and activation never race.
SELECT pg_advisory_xact_lock(hashtextextended('ml.models:' || @name::text, 0));

-- name: ModelOfRun :one
SELECT id, version, status, decision, metrics
  FROM ml.models
 WHERE name = @name AND training_run_id = @run_id;

-- name: ActiveModel :one
SELECT id, version, backend, weights, normalization, metrics, training_run_id
  FROM ml.models
 WHERE name = @name AND status = 'active';

-- name: RetireActiveModel :exec
UPDATE ml.models SET status = 'retired', retired_at = now()
 WHERE name = @name AND status = 'active';

-- name: InsertModel :one
INSERT INTO ml.models (name, version, backend, architecture, weights, normalization, metrics, status,
                       decision, training_run_id, activated_at)
VALUES (@name, (SELECT coalesce(max(m.version), 0) + 1 FROM ml.models m WHERE m.name = @name),
        @backend, @architecture, @weights, @normalization, @metrics, @status, @decision, @training_run_id,
        CASE WHEN @status::text = 'active' THEN now() END)
RETURNING id, version;

-- name: UpsertPackagePatterns :execrows
INSERT INTO ml.package_patterns AS p (package, rule_pattern, predicted_pattern, confidence, model_id, run_id)
SELECT u.package, u.rule_pattern, u.predicted_pattern, u.confidence, @model_id::bigint, @run_id::bigint
  FROM (SELECT unnest(@packages::text[]) AS package, unnest(@rule_patterns::text[]) AS rule_pattern,
               unnest(@predicted_patterns::text[]) AS predicted_pattern,
               unnest(@confidences::double precision[]) AS confidence) u
ON CONFLICT (package) DO UPDATE
   SET rule_pattern = excluded.rule_pattern, predicted_pattern = excluded.predicted_pattern,
       confidence = excluded.confidence, model_id = excluded.model_id, run_id = excluded.run_id,
       updated_at = now();


-- name: ConfigureWorkflow :one
SELECT qflow.configure_workflow(@workflow, @settings) AS version;
