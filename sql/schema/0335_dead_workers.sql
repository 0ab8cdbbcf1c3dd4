-- dead_workers returns those of the given workers whose liveness lock nobody holds
-- in this database (0332_worker_lock_key.sql): their processes are gone, or cut off from the
-- database. One read of pg_locks serves the whole list. A bigint advisory key shows there as its
-- high half in classid and its low half in objid, with objsubid 1; advisory locks belong to a
-- database, so a worker of the same name on another database of the server does not count.
CREATE FUNCTION qflow.dead_workers(p_workers text[])
RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_workers IS NULL OR cardinality(p_workers) = 0 THEN
        RETURN '{}';
    END IF;
    RETURN ARRAY(
        SELECT w
          FROM unnest(p_workers) AS w
         WHERE w IS NOT NULL
           AND qflow.worker_lock_key(w) NOT IN (
                   SELECT (l.classid::bigint << 32) | l.objid::bigint
                     FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
                      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())));
END $$;
