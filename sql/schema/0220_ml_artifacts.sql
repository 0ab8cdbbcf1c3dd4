-- ml.artifacts: the large arrays steps hand each other by reference (a step's output names an
-- artifact id, never megabytes of JSON).

CREATE TABLE ml.artifacts (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     bigint      NOT NULL REFERENCES qflow.runs ON DELETE CASCADE,
    name       text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- matrix: rows x cols float64, little-endian, row-major; model: kernels binary; json: a document.
    kind       text        NOT NULL CHECK (kind IN ('matrix', 'model', 'json')),
    rows       integer     CHECK (rows >= 0),
    cols       integer     CHECK (cols > 0),
    data       bytea       NOT NULL,
    meta       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(meta) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, name),
    CHECK ((kind = 'matrix') = (rows IS NOT NULL AND cols IS NOT NULL)),
    CHECK (kind <> 'matrix' OR octet_length(data) = rows::bigint * cols * 8)
);
