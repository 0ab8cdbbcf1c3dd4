-- analyze_grown_tables refreshes the planner's statistics of a hot table that holds more than
-- twice the rows they describe (and 1,000 more), and returns the tables it analyzed. One
-- INSERT of 20,000 runs into tables that held a few hundred rows (or none: TRUNCATE forgets
-- them) left every plan of the hop, River's fetch included, estimating from statistics of the
-- small tables until autovacuum came, and autovacuum looks at a database only once a minute
-- (autovacuum_naptime): measured, the backlog drained at 40 runs/s for 40 s, then at 380
-- runs/s right after autovacuum analyzed River's table. Growth only: a table's churn (rows
-- updated, finished, deleted) is left to autovacuum, so a busy table is not analyzed again and
-- again. The sweep calls it twice a second; the live-row counts it reads are of committed
-- changes, so an INSERT still running is not analyzed half-written. A table busy with
-- autovacuum is skipped (SKIP_LOCKED): its statistics are on their way.
CREATE FUNCTION qflow.analyze_grown_tables()
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_table  regclass;
    v_tables text[] := '{}';
BEGIN
    FOR v_table IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
         WHERE c.oid IN ('qflow.runs'::regclass, 'qflow.step_runs'::regclass, 'qflow.step_attempts'::regclass,
                         'river.river_job'::regclass)
           AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
           AND s.n_live_tup > 1000 + 2 * greatest(c.reltuples, 0)
    LOOP
        EXECUTE format('ANALYZE (SKIP_LOCKED) %s', v_table);
        v_tables := v_tables || v_table::text;
    END LOOP;
    RETURN v_tables;
END $$;
