-- Queries of the step worker: claim an attempt, finish it, give it back.

-- name: ClaimStep :one
SELECT c.workflow::text AS workflow, c.timeout_ms::bigint AS timeout_ms, c.input::jsonb AS input, c.deps::jsonb AS deps
  FROM qflow.claim_step(@run_id, @step, @attempt, @worker) AS c;

-- name: CompleteStep :one
SELECT qflow.complete_step(@run_id, @step, @attempt, @output) AS completed;

-- name: FailStep :one
SELECT qflow.fail_step(@run_id, @step, @attempt, @error, @permanent, @timed_out) AS outcome;

-- name: ReleaseStep :one
SELECT qflow.release_step(@run_id, @step, @attempt, @reason) AS released;
