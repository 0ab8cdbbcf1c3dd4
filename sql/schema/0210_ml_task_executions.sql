-- ml.task_executions: the records the complexity model learns from (users load their own with
-- plain SQL; `qflow seed-data` generates realistic ones).

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
