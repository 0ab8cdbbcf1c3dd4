-- Queries of `qflow migrate` and of workers about the schema and its roles
-- (sql/schema/0195_schema_version.sql, 0900_secure_procedures.sql, 0910_ensure_roles.sql).

-- name: SecureProcedures :exec
-- After every migration run: nothing callable by PUBLIC, definer procedures as their owner.
SELECT qflow.secure_procedures();

-- name: EnsureRoles :exec
SELECT qflow.ensure_roles(@admin_role::text, @worker_role::text, @trigger_role::text, @reader_role::text);

-- name: SchemaVersion :one
-- The number of the last migration tern ran on this database.
SELECT version FROM qflow.schema_version;
