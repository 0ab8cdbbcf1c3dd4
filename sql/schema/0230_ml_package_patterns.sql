-- ml.package_patterns: what the architecture model says about each package it was shown.

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
