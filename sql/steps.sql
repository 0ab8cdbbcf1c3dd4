-- Queries of the step worker: claim attempts and record their results, in batches.

-- name: ClaimSteps :many
SELECT c.run_id::bigint AS run_id, c.step::text AS step, c.attempt::integer AS attempt, c.workflow::text AS workflow,
       c.timeout_ms::bigint AS timeout_ms, c.input::jsonb AS input, c.deps::jsonb AS deps
  FROM qflow.claim_steps(@claims, @worker) AS c;

-- name: FinishSteps :many
SELECT f.run_id::bigint AS run_id, f.step::text AS step, f.attempt::integer AS attempt, f.outcome::text AS outcome
  FROM qflow.finish_steps(@results) AS f;
