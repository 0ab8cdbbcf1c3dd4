-- Queries of `qflow migrate`.

-- name: EnsureSchema :exec
-- tern keeps its version table inside the schema, so the schema must exist first.
CREATE SCHEMA IF NOT EXISTS qflow;

-- name: EnsureRiverSchema :exec
-- River's migrator creates its tables but not the schema they live in.
CREATE SCHEMA IF NOT EXISTS river;

-- name: LockMigrate :exec
-- One `qflow migrate` at a time per database, for the whole of it (tern's own lock covers only
-- tern's part). Session-level: it spans several transactions.
SELECT pg_advisory_lock(hashtextextended('qflow.migrate', 0));

-- name: UnlockMigrate :exec
SELECT pg_advisory_unlock(hashtextextended('qflow.migrate', 0));

-- name: SchemaIsFresh :one
-- A database that has never been migrated has no version table.
SELECT (to_regclass('qflow.schema_version') IS NULL)::boolean AS fresh;

-- name: StampSchemaVersion :exec
-- A fresh database made from sql/schema holds every migration's result already.
INSERT INTO qflow.schema_version (version) VALUES (@version::integer);

-- name: AppliedCode :many
SELECT file, sha256 FROM qflow.schema_code ORDER BY file;

-- name: ActAsSchemaOwner :exec
-- Act as the owner of schema qflow (the admin role once roles exist), for the rest of the
-- transaction (@local: the code pass, so that code is owned as ensure_roles would have it) or
-- of the session (tern's migrations: a table a migration creates is the owner's like every
-- other, and the code pass, acting as that owner, may put triggers on it).
SELECT set_config('role', r.rolname, @local::boolean)
  FROM pg_catalog.pg_namespace n
  JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
 WHERE n.nspname = 'qflow' AND r.rolname <> current_user AND pg_has_role(current_user, r.oid, 'MEMBER');

-- name: ActAsSessionUser :exec
-- Back from ActAsSchemaOwner (for the transaction or the session, as it was set): the
-- bookkeeping tables are whoever ran the migrations'.
SELECT set_config('role', 'none', @local::boolean);

-- name: CodeGrants :many
-- The grants on code objects (routines of schema qflow, views of qflow and ml) to roles other
-- than their owner, as statements that give them again once the code is re-created.
SELECT 'routine'::text AS kind, p.oid::regprocedure::text AS object,
       format('GRANT EXECUTE ON ROUTINE %s TO %I', p.oid::regprocedure, r.rolname)::text AS stmt
  FROM pg_catalog.pg_proc p
 CROSS JOIN LATERAL aclexplode(p.proacl) a
  JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
 WHERE p.pronamespace = 'qflow'::regnamespace AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
UNION ALL
SELECT 'view', c.oid::regclass::text, format('GRANT %s ON %s TO %I', a.privilege_type, c.oid::regclass, r.rolname)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL aclexplode(c.relacl) a
  JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
 WHERE n.nspname IN ('qflow', 'ml') AND c.relkind = 'v' AND a.grantee <> c.relowner;

-- name: KeepCodeGrant :one
-- A grant CodeGrants saved is given again when its object is still there and, for a routine,
-- qflow.procedure_access still lets a role call it: a routine that became internal loses its
-- callers with its old definition.
SELECT (CASE WHEN @kind::text = 'routine'
             THEN EXISTS (SELECT 1
                            FROM pg_catalog.pg_proc p
                            JOIN qflow.procedure_access a ON a.name = p.proname
                           WHERE p.oid = to_regprocedure(@object::text) AND cardinality(a.roles) > 0)
             ELSE to_regclass(@object::text) IS NOT NULL END)::boolean AS keep;

-- name: CodeDrops :many
-- Every code object of schemas qflow and ml, as the statements that drop it: views, then
-- triggers, then routines. Routines are dropped without CASCADE: anything else that uses one
-- (a user's view, say) stops the migration with Postgres's error naming it.
SELECT s.stmt::text AS stmt
  FROM (SELECT 1 AS ord, format('DROP VIEW IF EXISTS %s CASCADE', c.oid::regclass) AS stmt
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('qflow', 'ml') AND c.relkind = 'v'
        UNION ALL
        SELECT 2, format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass)
          FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('qflow', 'ml') AND NOT t.tgisinternal
        UNION ALL
        SELECT 3, format('DROP ROUTINE %s', p.oid::regprocedure)
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('qflow', 'ml')) s
 ORDER BY s.ord, s.stmt;

-- name: RecordAppliedCode :exec
-- What the code pass applied, replacing the previous record. (A DELETE of every row in a WITH
-- beside the INSERT is not enough: the INSERT runs first and meets the old rows' keys.)
WITH applied AS (
    SELECT unnest(@files::text[]) AS file, unnest(@sums::text[]) AS sha256
), forgotten AS (
    DELETE FROM qflow.schema_code c WHERE NOT EXISTS (SELECT 1 FROM applied a WHERE a.file = c.file)
)
INSERT INTO qflow.schema_code AS c (file, sha256)
SELECT a.file, a.sha256 FROM applied a
    ON CONFLICT (file) DO UPDATE SET sha256 = excluded.sha256, applied_at = now();
