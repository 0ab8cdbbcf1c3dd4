-- Since when a worker's liveness lock has been free (sql/schema/0170_workers.sql): a session cut
-- while its process lives gets a moment to come back before its steps are given up.
ALTER TABLE qflow.workers ADD COLUMN dead_since timestamptz;
