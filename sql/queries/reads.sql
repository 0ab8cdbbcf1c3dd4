-- Queries of readers that may be reading a streaming replica (qflow ui, status and list with
-- --read-url, the metrics reporter): how old what they read is.

-- name: Staleness :one
-- How old the data read on this connection is: qflow.staleness() (0875_staleness.sql).
SELECT s.replica::boolean AS replica, s.as_of::timestamptz AS as_of, s.lag_seconds::double precision AS lag_seconds,
       s.streaming::boolean AS streaming, s.replay_paused::boolean AS replay_paused
  FROM qflow.staleness() AS s;
