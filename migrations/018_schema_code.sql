-- The code files of sql/schema applied last, with their checksums: from this version on,
-- `qflow migrate` re-applies functions, procedures, triggers, views and grants from sql/schema
-- after the migrations, and this table tells it when they changed (sql/schema/0195_schema_version.sql).
CREATE TABLE qflow.schema_code (
    file       text        PRIMARY KEY,
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now()
);
