-- workflows: one row per version of a workflow definition. qflow.register_workflow is the
-- only writer (sql/schema/0370_register_workflow.sql).

CREATE TABLE qflow.workflows (
    name        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    version     integer     NOT NULL CHECK (version > 0),
    timeout_ms  bigint      NOT NULL CHECK (timeout_ms > 0),
    description text        NOT NULL DEFAULT '',
    -- The document last registered: registering the same document again changes nothing, so
    -- settings an operator changed since (SQL or environment) survive a worker restart.
    definition  jsonb       NOT NULL,
    -- Steps and edges only; registration compares it to decide whether a new version is due.
    shape       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
