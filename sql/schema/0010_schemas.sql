-- The schemas. qflow holds the engine: definitions, runs, steps and the rules that move them.
-- ml holds what the ML pipelines learn from and produce. River's tables live in schema river,
-- which River's own migrator creates and fills; nothing here defines them.

CREATE SCHEMA IF NOT EXISTS qflow;
CREATE SCHEMA IF NOT EXISTS ml;
