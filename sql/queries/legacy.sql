-- Queries of the legacy single-job mode.

-- name: LegacyClaim :one
SELECT c.workflow::text AS workflow, c.version::integer AS version, c.timeout_ms::bigint AS timeout_ms, c.input::jsonb AS input
  FROM qflow.legacy_claim(@run_id, @attempt) AS c;

-- name: LegacySteps :many
SELECT s.name::text AS name, s.depends_on::text[] AS depends_on, s.timeout_ms::bigint AS timeout_ms,
       s.condition::jsonb AS condition, coalesce(s.map_over, '{}')::text[] AS map_over, s.max_items::integer AS max_items
  FROM qflow.legacy_steps(@workflow, @version) AS s;

-- name: ConditionHolds :one
-- Whether a step's context ({"input": ..., <dependency>: <output>}) contains its condition:
-- Postgres's own jsonb containment, so legacy mode decides exactly as the step engine does.
SELECT (@context::jsonb @> @condition::jsonb)::boolean AS holds;

-- name: MapSource :one
-- What a legacy chain's map step maps over: the array at path[2:] of source (the run input or
-- the dependency's output, path[1]), its type, and source without it (what each element gets
-- of that dependency): Postgres's own #> and #-, as the step engine reads them
-- (sql/schema/0342_step_value.sql, 0340_step_input.sql).
SELECT coalesce(jsonb_typeof(@source::jsonb #> (@path::text[])[2:]), 'nothing')::text AS kind,
       coalesce(@source::jsonb #> (@path::text[])[2:], 'null')::jsonb AS items,
       -- (#- is only asked where #> found an array: a path through a scalar would make it raise.)
       coalesce(CASE WHEN jsonb_typeof(@source::jsonb #> (@path::text[])[2:]) = 'array'
                     THEN @source::jsonb #- (@path::text[])[2:] END, 'null')::jsonb AS rest;

-- name: LegacyComplete :one
SELECT qflow.legacy_complete(@run_id, @attempt, @output) AS completed;

-- name: LegacyFail :one
SELECT qflow.legacy_fail(@run_id, @attempt, @error, @permanent) AS outcome;
