-- name: TaskExecutionsFingerprint :one
-- A summary of exactly the rows CollectTaskExecutions reads now (same filter, order and limit:
-- keep the two in step), so that complexity_training's data_collection, cached under it, is
-- reused only while those rows are the same: how many, the newest and oldest executed_at, the
-- highest id (a late insert with an old timestamp), and an order-free checksum of the columns
-- it reads (a relabelled record). The window's start is left out: it moves every second.
SELECT count(*)::integer AS rows,
       max(w.executed_at)::timestamptz AS newest,
       min(w.executed_at)::timestamptz AS oldest,
       coalesce(max(w.id), 0)::bigint AS max_id,
       coalesce(sum(hashtextextended(concat_ws('|', w.id, w.task_type, w.context_length, w.uses_tools,
                                               w.uses_vision, w.observed_complexity), 0)), 0)::text AS checksum
  FROM (SELECT id, task_type, context_length, uses_tools, uses_vision, observed_complexity, executed_at
          FROM ml.task_executions
         WHERE executed_at >= now() - make_interval(days => @days_back::integer)
           AND observed_complexity IS NOT NULL
         ORDER BY executed_at DESC, id DESC
         LIMIT @max_rows::integer) w;
