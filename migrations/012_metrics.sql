-- What the metrics reporter reads. Finished runs are read incrementally by finish time, so
-- that index keeps each read proportional to what finished since the last one, however much
-- history the table holds.

CREATE INDEX runs_finished ON qflow.runs (finished_at, id) WHERE finished_at IS NOT NULL;
