-- steps: the steps of a workflow version with their settings (worker class, retries, timeout,
-- concurrency limit). Settings of the current version are changed by qflow.configure_workflow
-- or a plain UPDATE; the shape (names and edges) only by registering a new version.

CREATE TABLE qflow.steps (
    workflow        text    NOT NULL,
    version         integer NOT NULL,
    name            text    NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    position        integer NOT NULL CHECK (position >= 0),   -- a topological order
    dep_count       integer NOT NULL CHECK (dep_count >= 0),
    is_leaf         boolean NOT NULL,
    worker_class    text    NOT NULL CHECK (worker_class ~ '^[a-z][a-z0-9_]{0,62}$'),
    max_attempts    integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
    retry_base_ms   bigint  NOT NULL CHECK (retry_base_ms >= 0),
    retry_max_ms    bigint  NOT NULL CHECK (retry_max_ms >= retry_base_ms),
    timeout_ms      bigint  NOT NULL CHECK (timeout_ms > 0),
    max_concurrency integer CHECK (max_concurrency > 0),     -- NULL: unlimited
    on_failure      text    NOT NULL DEFAULT 'fail' CHECK (on_failure IN ('fail', 'skip')),
    resource_hints  jsonb   NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(resource_hints) = 'object'),
    -- The step runs only when {"input": <run input>, <dependency>: <its output>, ...} contains
    -- this object (jsonb @>); otherwise it is skipped (0515_step_skips.sql). NULL: always.
    condition       jsonb   CHECK (jsonb_typeof(condition) = 'object'),
    -- A map step runs once per element of the array at this path (0518_prepare_steps.sql): its
    -- first element is "input" (the run input) or a dependency, the rest descend into it. NULL:
    -- an ordinary step. max_items bounds the elements.
    map_over        text[]  CHECK (cardinality(map_over) >= 1),
    max_items       integer NOT NULL DEFAULT 10000 CHECK (max_items BETWEEN 1 AND 1000000),
    -- A cached step reuses a succeeded output of the same step and version whose input hashed
    -- the same (qflow.step_cache) when it is younger than cache_ttl_ms. cache_key: the paths the
    -- hash covers, as map_over's; NULL: the run input and every dependency's output.
    cache_ttl_ms    bigint  CHECK (cache_ttl_ms > 0),
    cache_key       text[]  CHECK (cardinality(cache_key) >= 1),
    PRIMARY KEY (workflow, version, name),
    FOREIGN KEY (workflow, version) REFERENCES qflow.workflows ON DELETE CASCADE
);
