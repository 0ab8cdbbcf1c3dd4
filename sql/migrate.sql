-- Queries of `qflow migrate`.

-- name: EnsureSchema :exec
-- tern keeps its version table inside the schema, so the schema must exist first.
CREATE SCHEMA IF NOT EXISTS qflow;

-- name: EnsureRiverSchema :exec
-- River's migrator creates its tables but not the schema they live in.
CREATE SCHEMA IF NOT EXISTS river;
