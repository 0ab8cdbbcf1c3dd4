-- Liveness (this file, 0335_dead_workers.sql): a worker process is alive while its database
-- session is. Each worker holds, on a connection of its own, a session-level advisory lock
-- keyed by its id (worker/liveness.go). Postgres releases it the moment that session ends:
-- at once when the process dies or its connection closes, within the TCP keepalive time when
-- its machine is lost. So a dead worker is noticed by the next sweep, a second later, whatever
-- its steps' timeouts; a live one keeps its steps however long they run (up to their timeout).
--
-- worker_lock_key is the key of that lock.
CREATE FUNCTION qflow.worker_lock_key(p_worker text)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('qflow.worker:' || p_worker, 0)
$$;
