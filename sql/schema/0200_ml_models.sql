-- ml.models: the model registry. Every trained model with its weights, feature normalization
-- and held-out metrics; at most one active per name.

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
