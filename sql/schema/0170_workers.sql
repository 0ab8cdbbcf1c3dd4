-- Worker processes announce themselves here so operators (and metrics) see who is alive. A
-- worker announces itself once it holds its liveness lock (0332_worker_lock_key.sql), and its
-- row goes when it has been dead for a while (0650_sweep.sql).

CREATE TABLE qflow.workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    classes      text[]      NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    -- Since when the sweep has found the worker's liveness lock free (NULL: held).
    dead_since   timestamptz
);
