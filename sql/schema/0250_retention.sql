-- retention: how long the finished runs of one workflow are kept, overriding the setting
-- retention_days (0180_settings.sql) for it. 0960_prune_runs.sql deletes what is older.

CREATE TABLE qflow.retention (
    workflow text    PRIMARY KEY,
    days     integer NOT NULL CHECK (days BETWEEN 1 AND 36500)
);
