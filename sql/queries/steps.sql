-- Queries of the step worker: claim attempts and record their results, in batches.

-- name: ClaimSteps :many
SELECT c.run_id::bigint AS run_id, c.step::text AS step, c.attempt::integer AS attempt, c.workflow::text AS workflow,
       c.timeout_ms::bigint AS timeout_ms, c.input::jsonb AS input, c.deps::jsonb AS deps, c.item::jsonb AS item
  FROM qflow.claim_steps(@claims, @worker) AS c;

-- name: FinishSteps :many
-- next_* is the step the entry's worker slot takes next (eager dispatch); next_step is empty
-- when it takes none.
SELECT f.run_id::bigint AS run_id, f.step::text AS step, f.attempt::integer AS attempt, f.outcome::text AS outcome,
       coalesce(f.next_step, '')::text AS next_step, coalesce(f.next_attempt, 0)::integer AS next_attempt,
       coalesce(f.next_job_id, 0)::bigint AS next_job_id, coalesce(f.next_workflow, '')::text AS next_workflow,
       coalesce(f.next_timeout_ms, 0)::bigint AS next_timeout_ms, coalesce(f.next_input, '{}')::jsonb AS next_input,
       coalesce(f.next_deps, '{}')::jsonb AS next_deps, f.next_item::jsonb AS next_item
  FROM qflow.finish_steps(@results::jsonb, @worker::text, @classes::text[]) AS f;

-- name: ReportProgress :one
SELECT qflow.report_progress(@worker::text, @reports::jsonb)::integer AS written;
