-- staleness: how old the data this session reads is. On the primary it is current. On a
-- streaming replica (`qflow ui --read-url`, psql on a standby) it is as of the last
-- transaction the replica replayed:
--
--   SELECT * FROM qflow.staleness();
--
--   replica        true on a standby (in recovery)
--   as_of          the time the data describes: now() on the primary, the commit time of the
--                  last replayed transaction on a replica (now() before it replayed any)
--   lag_seconds    how far behind the primary the data is: 0 on the primary, and on a replica
--                  that is streaming and has replayed all it received; else the age of as_of
--                  (so a paused replay, or a replica cut off from its primary, shows its age
--                  growing, while a caught-up replica of a quiet primary does not)
--   streaming      a replica connected to its primary (its WAL receiver is running)
--   replay_paused  a replica whose replay an operator paused (pg_wal_replay_pause())
--
-- The metrics reporter counts time from as_of, so a replica's lag cannot make it skip the
-- runs it has not replayed yet, nor take live workers for dead.
CREATE FUNCTION qflow.staleness(OUT replica boolean, OUT as_of timestamptz, OUT lag_seconds double precision,
                                OUT streaming boolean, OUT replay_paused boolean)
LANGUAGE sql STABLE AS $$
    SELECT s.replica,
           CASE WHEN s.replica THEN coalesce(pg_last_xact_replay_timestamp(), now()) ELSE now() END,
           CASE WHEN NOT s.replica THEN 0
                WHEN s.streaming AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                ELSE round(extract(epoch FROM now() - coalesce(pg_last_xact_replay_timestamp(), now()))::numeric, 3)::double precision
           END,
           s.streaming,
           CASE WHEN s.replica THEN pg_is_wal_replay_paused() ELSE false END
      FROM (SELECT pg_is_in_recovery() AS replica,
                   -- its pid is shown to every role; the other columns only to pg_read_all_stats
                   EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL) AS streaming) s;
$$;
