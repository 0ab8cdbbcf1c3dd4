-- QuantumFlow state: definitions, runs, step runs, attempts, rollouts, workers.
-- Every status lives in a CHECK so an impossible state cannot be written.

CREATE SCHEMA IF NOT EXISTS qflow;

-- Definitions ------------------------------------------------------------------------------

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
    PRIMARY KEY (workflow, version, name),
    FOREIGN KEY (workflow, version) REFERENCES qflow.workflows ON DELETE CASCADE
);

CREATE TABLE qflow.step_deps (
    workflow   text    NOT NULL,
    version    integer NOT NULL,
    step       text    NOT NULL,
    depends_on text    NOT NULL,
    PRIMARY KEY (workflow, version, step, depends_on),
    FOREIGN KEY (workflow, version, step) REFERENCES qflow.steps ON DELETE CASCADE,
    FOREIGN KEY (workflow, version, depends_on) REFERENCES qflow.steps ON DELETE CASCADE,
    CHECK (step <> depends_on)
);

CREATE INDEX step_deps_successors ON qflow.step_deps (workflow, version, depends_on);

-- Which runs of a workflow use the step engine and which the legacy single-job mode.
-- A workflow without a row runs in workflow mode.
CREATE TABLE qflow.rollouts (
    workflow       text        PRIMARY KEY,
    enabled        boolean     NOT NULL DEFAULT false,
    canary_percent integer     NOT NULL DEFAULT 10 CHECK (canary_percent BETWEEN 0 AND 100),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Runtime ----------------------------------------------------------------------------------

CREATE TABLE qflow.runs (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow        text        NOT NULL,
    version         integer     NOT NULL,
    input           jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    mode            text        NOT NULL CHECK (mode IN ('workflow', 'legacy')),
    -- 1 is dispatched first, 4 last (River's convention).
    priority        smallint    NOT NULL DEFAULT 2 CHECK (priority BETWEEN 1 AND 4),
    deadline        timestamptz NOT NULL,
    remaining_steps integer     NOT NULL DEFAULT 0 CHECK (remaining_steps >= 0),
    attempt         integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),   -- legacy mode only
    output          jsonb,
    error           text,
    idempotency_key text        UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    FOREIGN KEY (workflow, version) REFERENCES qflow.workflows,
    CHECK ((finished_at IS NOT NULL) = (status IN ('succeeded', 'failed', 'cancelled', 'timed_out'))),
    CHECK (status <> 'succeeded' OR remaining_steps = 0 OR mode = 'legacy')
);

CREATE INDEX runs_live_deadline ON qflow.runs (deadline) WHERE status IN ('pending', 'running');
CREATE INDEX runs_workflow_status ON qflow.runs (workflow, status);
CREATE INDEX runs_created_at ON qflow.runs (created_at);

CREATE TABLE qflow.step_runs (
    run_id           bigint      NOT NULL REFERENCES qflow.runs ON DELETE CASCADE,
    step             text        NOT NULL,
    workflow         text        NOT NULL,
    version          integer     NOT NULL,
    status           text        NOT NULL
                     CHECK (status IN ('waiting', 'ready', 'queued', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    remaining_deps   integer     NOT NULL CHECK (remaining_deps >= 0),
    priority         smallint    NOT NULL,
    -- attempt counts every dispatch of the step; the retry budget counts from first_attempt,
    -- which retry_run and graceful release move forward.
    attempt          integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    first_attempt    integer     NOT NULL DEFAULT 1 CHECK (first_attempt >= 1),
    output           jsonb,
    error            text,
    job_id           bigint,
    worker           text,
    queued_at        timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    next_attempt_at  timestamptz,
    PRIMARY KEY (run_id, step),
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK ((finished_at IS NOT NULL) = (status IN ('succeeded', 'failed', 'skipped', 'cancelled'))),
    CHECK (status IN ('waiting', 'cancelled', 'skipped') OR remaining_deps = 0),
    CHECK (status NOT IN ('queued', 'running') OR job_id IS NOT NULL)
);

-- Live-state partial indexes: they stay small however much history accumulates.
CREATE INDEX step_runs_in_flight ON qflow.step_runs (workflow, step) WHERE status IN ('queued', 'running');
CREATE INDEX step_runs_ready ON qflow.step_runs (workflow, step, priority, run_id) WHERE status = 'ready';
CREATE INDEX step_runs_lease ON qflow.step_runs (lease_expires_at) WHERE status = 'running';

CREATE TABLE qflow.step_attempts (
    run_id      bigint      NOT NULL,
    step        text        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    job_id      bigint,
    worker      text,
    status      text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (run_id, step, attempt),
    FOREIGN KEY (run_id, step) REFERENCES qflow.step_runs ON DELETE CASCADE,
    CHECK ((finished_at IS NULL) = (status = 'running'))
);

-- Worker processes announce themselves here so operators (and metrics) see who is alive.
CREATE TABLE qflow.workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    classes      text[]      NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
