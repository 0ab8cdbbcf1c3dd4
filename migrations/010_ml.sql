-- Schema ml: what the ML pipelines learn from and what they produce.
--
-- task_executions are the records the complexity model learns from (users load their own with
-- plain SQL; `qflow seed-data` generates realistic ones). artifacts hold the large arrays steps
-- hand each other by reference (a step's output names an artifact id, never megabytes of JSON).
-- models is the registry: every trained model with its weights, feature normalization and
-- held-out metrics, at most one active per name. package_patterns is what the architecture
-- model says about each package it was shown.

CREATE SCHEMA IF NOT EXISTS ml;

CREATE TABLE ml.models (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    version         integer     NOT NULL CHECK (version > 0),
    -- The kernels backend that trained it ("cpu", "cuda").
    backend         text        NOT NULL,
    -- Layers, loss and optimizer settings, as JSON for people; the weights carry their own copy.
    architecture    jsonb       NOT NULL CHECK (jsonb_typeof(architecture) = 'object'),
    -- kernels.Model.MarshalBinary: versioned and checksummed.
    weights         bytea       NOT NULL,
    -- How raw records become the model's inputs: feature names, vocabularies, mean and std.
    normalization   jsonb       NOT NULL CHECK (jsonb_typeof(normalization) = 'object'),
    -- Held-out metrics of the model and, under "baseline", of the trivial predictor.
    metrics         jsonb       NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
    status          text        NOT NULL DEFAULT 'candidate' CHECK (status IN ('candidate', 'active', 'retired')),
    -- Why deployment gave it its status, in words.
    decision        text        NOT NULL DEFAULT '',
    training_run_id bigint      REFERENCES qflow.runs ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    retired_at      timestamptz,
    UNIQUE (name, version),
    -- A retried deployment finds the model its run already stored.
    UNIQUE (name, training_run_id),
    CHECK (status = 'candidate' OR activated_at IS NOT NULL),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL))
);

-- At most one active model per name, whoever writes.
CREATE UNIQUE INDEX models_one_active ON ml.models (name) WHERE status = 'active';

CREATE TABLE ml.task_executions (
    id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_type             text        NOT NULL CHECK (task_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    model                 text        NOT NULL,
    -- Prompt size in tokens, and tokens produced.
    context_length        integer     NOT NULL CHECK (context_length > 0),
    output_tokens         integer     NOT NULL CHECK (output_tokens >= 0),
    -- Parameter count of the model that executed the task.
    parameter_count       bigint      NOT NULL CHECK (parameter_count > 0),
    -- USD per million tokens.
    input_price           double precision NOT NULL CHECK (input_price >= 0),
    output_price          double precision NOT NULL CHECK (output_price >= 0),
    -- Capabilities the task needed.
    uses_tools            boolean     NOT NULL DEFAULT false,
    uses_vision           boolean     NOT NULL DEFAULT false,
    duration_ms           integer     NOT NULL CHECK (duration_ms >= 0),
    success               boolean     NOT NULL,
    quality_score         double precision NOT NULL CHECK (quality_score BETWEEN 0 AND 1),
    -- 1 (worst) to 5, when the user said.
    user_satisfaction     smallint    CHECK (user_satisfaction BETWEEN 1 AND 5),
    -- The label: complexity as measured after the fact, in [0, 1]; NULL when nobody measured it.
    observed_complexity   double precision CHECK (observed_complexity BETWEEN 0 AND 1),
    -- Filled by the active complexity model (model_deployment backfills rows that lack it).
    predicted_complexity  double precision CHECK (predicted_complexity BETWEEN 0 AND 1),
    predicted_by          bigint      REFERENCES ml.models ON DELETE SET NULL,
    executed_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX task_executions_executed_at ON ml.task_executions (executed_at);
CREATE INDEX task_executions_unpredicted ON ml.task_executions (id) WHERE predicted_complexity IS NULL;

-- Arrays and blobs one step of a run hands to the next. (run_id, name) is unique so a retried
-- step overwrites its own artifact and keeps its id.
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

-- What the architecture model says about each package it was shown.
CREATE TABLE ml.package_patterns (
    package           text        NOT NULL,
    -- The rule-based detector's label, and the active model's prediction with its probability.
    rule_pattern      text        NOT NULL,
    predicted_pattern text        NOT NULL,
    confidence        double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    model_id          bigint      REFERENCES ml.models ON DELETE SET NULL,
    run_id            bigint,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package)
);

-- The seeds' defaults for the two pipelines: the new (workflow) mode is off until enabled,
-- complexity_training then sends 10% of runs to it (canary), architecture_learning all of them
-- (a direct migration). Workers change these from the environment; SQL UPDATEs work as well.
INSERT INTO qflow.rollouts (workflow, enabled, canary_percent)
VALUES ('complexity_training', false, 10), ('architecture_learning', false, 100)
ON CONFLICT (workflow) DO NOTHING;
