-- step_cache: the outputs cached steps (steps.cache_ttl_ms) may reuse, one per step, version
-- and input hash: the latest succeeded output for that input, and the run that made it. Written
-- when such a step succeeds (0520_settle_steps.sql), read when one becomes ready
-- (0518_prepare_steps.sql), cleared by qflow.invalidate_cache. An entry keeps its run, and so
-- the artifacts its output names, from retention until it expires (0960_prune_runs.sql).

CREATE TABLE qflow.step_cache (
    workflow   text        NOT NULL,
    version    integer     NOT NULL,
    step       text        NOT NULL,
    input_hash text        NOT NULL,
    output     jsonb       NOT NULL,
    run_id     bigint      NOT NULL REFERENCES qflow.runs ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (workflow, version, step, input_hash),
    FOREIGN KEY (workflow, version, step) REFERENCES qflow.steps ON DELETE CASCADE
);

CREATE INDEX step_cache_run ON qflow.step_cache (run_id);
CREATE INDEX step_cache_expires ON qflow.step_cache (expires_at);
