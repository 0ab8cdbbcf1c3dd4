-- What a worker's result came to, so that a result sent again after a lost reply gets the same
-- answer (sql/schema/0160_step_attempts.sql, 0550_finish_steps.sql).
ALTER TABLE qflow.step_attempts
    ADD COLUMN outcome      text CHECK (outcome IN ('completed', 'retry', 'skipped', 'failed', 'released')),
    ADD COLUMN next_step    text,
    ADD COLUMN next_attempt integer;
