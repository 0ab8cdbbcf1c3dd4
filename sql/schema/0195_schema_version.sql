-- How the schema got here: the upgrade bookkeeping `qflow migrate` keeps (migrations/doc.go).
--
-- schema_version is tern's own version table: the number of the last migration in migrations/
-- that this database has run. tern creates it before its first migration; a fresh database
-- gets it from this file, stamped at the newest migration (its tables were made from this
-- folder, which already holds every migration's result). A worker reads it to refuse a
-- database migrated by an older or newer binary.
CREATE TABLE qflow.schema_version (version integer NOT NULL);

-- schema_code lists the code files of this folder (functions, procedures, triggers, views,
-- grants: 0300 and up) that were applied last, with their checksums. `qflow migrate` applies
-- them again, all in one transaction, when the set differs from what the binary carries.
CREATE TABLE qflow.schema_code (
    file       text        PRIMARY KEY,
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
);
