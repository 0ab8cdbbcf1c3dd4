-- rollouts: which runs of a workflow use the step engine and which the legacy single-job
-- mode (qflow.run_mode decides each run's mode from it at insert).

CREATE TABLE qflow.rollouts (
    workflow       text        PRIMARY KEY,
    enabled        boolean     NOT NULL DEFAULT false,
    canary_percent integer     NOT NULL DEFAULT 10 CHECK (canary_percent BETWEEN 0 AND 100),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The seeds' defaults for the two pipelines: the new (workflow) mode is off until enabled,
-- complexity_training then sends 10% of runs to it (canary), architecture_learning all of them
-- (a direct migration). Workers change these from the environment; SQL UPDATEs work as well.
INSERT INTO qflow.rollouts (workflow, enabled, canary_percent)
VALUES ('complexity_training', false, 10), ('architecture_learning', false, 100)
ON CONFLICT (workflow) DO NOTHING;
