-- Queries of worker processes about themselves and the definitions they bring.

-- name: RegisterWorkflow :one
SELECT qflow.register_workflow(@definition) AS version;

-- name: HeartbeatWorker :exec
INSERT INTO qflow.workers (id, host, pid, classes)
VALUES (@id, @host, @pid, @classes)
ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), classes = excluded.classes;

-- name: RemoveWorker :exec
DELETE FROM qflow.workers WHERE id = @id;

-- name: Sweep :exec
CALL qflow.sweep();
