#!/usr/bin/env bash
# The demo behind `make demo`: migrate, seed task executions if there are none, start workers
# (the gpu class on qflow-gpu when this machine has a GPU and the binary, else on the CPU
# backend), trigger one run of each ML pipeline with SQL inserts, show their steps live, and
# print both models' held-out metrics next to their baselines. Then each pipeline runs alone in
# workflow mode and in legacy mode (one job per run), DEMO_COMPARE_RUNS times each, to compare
# end-to-end times. It stops its workers and finishes by itself.
set -euo pipefail
qflow=${QFLOW_BIN:-bin/qflow}
qflow_gpu=${QFLOW_GPU_BIN:-bin/qflow-gpu}
limit=${DEMO_TIMEOUT_S:-300}
compare=${DEMO_COMPARE_RUNS:-1}
: "${DATABASE_URL:?}"
export DATABASE_URL

logdir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

sql() { psql "$DATABASE_URL" -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
table() { psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 -P footer=off -c "$1"; }

echo "== qflow migrate"
"$qflow" migrate

echo
echo "== task executions for complexity_training"
"$qflow" seed-data --if-empty --rows "${DEMO_ROWS:-20000}"

# The seeds' variables, as an operator would set them to move both pipelines to the new mode.
export PGFLOW_COMPLEXITY_TRAINING_ENABLED=true COMPLEXITY_TRAINING_CANARY_PERCENT=100
export PGFLOW_ARCHITECTURE_LEARNING_ENABLED=true

echo
echo "== starting workers (logs in $logdir)"
"$qflow" worker --classes cpu --id demo-cpu --metrics-addr 127.0.0.1:0 >"$logdir/cpu.log" 2>&1 &
pids+=($!)
if [[ -x $qflow_gpu ]] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu class: $qflow_gpu worker on $(nvidia-smi -L | head -1)"
  "$qflow_gpu" worker --id demo-gpu --metrics-addr 127.0.0.1:0 >"$logdir/gpu.log" 2>&1 &
else
  echo "gpu class: no GPU here (or no $qflow_gpu), so training steps run on the CPU backend (qflow worker --classes gpu)"
  "$qflow" worker --classes gpu --id demo-gpu --metrics-addr 127.0.0.1:0 >"$logdir/gpu.log" 2>&1 &
fi
pids+=($!)
for _ in $(seq 1 100); do
  [[ $(sql "SELECT count(*) FROM qflow.workers WHERE id IN ('demo-cpu', 'demo-gpu')") == 2 ]] && break
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { cat "$logdir"/*.log >&2; exit 1; }; done
  sleep 0.2
done
table "SELECT workflow, enabled, canary_percent FROM qflow.rollouts WHERE workflow IN ('complexity_training', 'architecture_learning') ORDER BY 1"

goroot=$(go env GOROOT 2>/dev/null || true)
arch_input='{}'
[[ -n $goroot ]] && arch_input="{\"roots\": [\"$goroot/src\"]}"

# watch prints each run's steps whenever they change, until every run has finished.
watch() {
  local ids=$1 start=$SECONDS last="" now
  while :; do
    now=$(sql "SELECT string_agg(format('run %s %-21s %-9s %s', r.id, r.workflow, r.status,
                 coalesce((SELECT string_agg(so.step || '=' || so.status, ' ' ORDER BY so.position)
                             FROM qflow.step_overview so WHERE so.run_id = r.id), '(legacy: one job runs every step)')), E'\n' ORDER BY r.id)
                 FROM qflow.runs r WHERE r.id IN ($ids)")
    if [[ $now != "$last" ]]; then
      # Only the lines that changed (diff exits 1 when there are some).
      { diff <(echo "$last") <(echo "$now") || true; } | sed -n 's/^> //p' |
        while IFS= read -r l; do printf '[%4ss] %s\n' $((SECONDS - start)) "$l"; done
      last=$now
    fi
    [[ $(sql "SELECT count(*) FROM qflow.runs WHERE id IN ($ids) AND status IN ('pending', 'running')") == 0 ]] && break
    if ((SECONDS - start > limit)); then
      echo "runs $ids still running after ${limit}s; worker logs in $logdir" >&2
      exit 1
    fi
    sleep 0.3
  done
}

echo
echo "== one run of each pipeline, started with SQL"
echo "INSERT INTO qflow.runs (workflow, input) VALUES ('complexity_training', '{\"days_back\": 30}'), ('architecture_learning', '$arch_input')"
wf_ids=$(sql "INSERT INTO qflow.runs (workflow, input) VALUES ('complexity_training', '{\"days_back\": 30}'), ('architecture_learning', '$arch_input') RETURNING id" | paste -sd,)
watch "$wf_ids"

failed=$(sql "SELECT count(*) FROM qflow.runs WHERE id IN ($wf_ids) AND status <> 'succeeded'")
if [[ $failed != 0 ]]; then
  table "SELECT id, workflow, status, error FROM qflow.runs WHERE id IN ($wf_ids)"
  exit 1
fi

echo
echo "== held-out metrics: model vs baseline"
table "SELECT m.name AS model, k.metric, round((m.metrics ->> k.metric)::numeric, 4) AS model_value,
              round((m.metrics -> 'baseline' ->> k.metric)::numeric, 4) AS baseline, m.metrics ->> 'held_out_rows' AS held_out
         FROM ml.models m
         JOIN (VALUES ('complexity', 1, 'mse'), ('complexity', 2, 'r2'), ('complexity', 3, 'accuracy'),
                      ('architecture', 1, 'accuracy'), ('architecture', 2, 'macro_f1')) k(name, ord, metric) ON k.name = m.name
        WHERE m.training_run_id IN ($wf_ids)
        ORDER BY m.name DESC, k.ord"

echo
echo "== training step (model_training, gpu class)"
table "SELECT r.workflow, t ->> 'backend' AS backend, t ->> 'samples' AS samples, t ->> 'epochs' AS epochs,
              round((t ->> 'seconds')::numeric, 2) AS seconds, round((t ->> 'samples_per_sec')::numeric) AS samples_per_sec
         FROM qflow.runs r, LATERAL (SELECT r.output -> 'model_deployment' -> 'training' AS t) x
        WHERE r.id IN ($wf_ids) ORDER BY r.id"

echo
echo "== the model registry and what deployment did"
table "SELECT name, version, status, backend, training_run_id AS run, decision FROM ml.models
        WHERE training_run_id IN ($wf_ids) OR status = 'active' ORDER BY name, version"
table "SELECT count(*) AS task_executions, count(predicted_complexity) AS with_predicted_complexity FROM ml.task_executions"
table "SELECT rule_pattern, predicted_pattern, count(*) AS packages FROM ml.package_patterns GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 8"

echo
echo "== end to end, workflow mode vs legacy mode: each pipeline alone, $compare run(s) per mode, in turn"
cmp_ids=0
for wf in complexity_training architecture_learning; do
  input='{"days_back": 30}'
  [[ $wf == architecture_learning ]] && input=$arch_input
  for _ in $(seq 1 "$compare"); do
    for mode in workflow legacy; do
      id=$(sql "INSERT INTO qflow.runs (workflow, mode, input) VALUES ('$wf', '$mode', '$input') RETURNING id")
      start=$SECONDS
      while [[ $(sql "SELECT status IN ('pending', 'running') FROM qflow.runs WHERE id = $id") == t ]]; do
        if ((SECONDS - start > limit)); then echo "run $id still running after ${limit}s; worker logs in $logdir" >&2; exit 1; fi
        sleep 0.2
      done
      sql "SELECT format('run %s %-21s %-8s %-9s %s s  (model %s)', id, workflow, mode, status,
                         to_char(extract(epoch FROM finished_at - created_at), 'FM990.00'),
                         output -> 'model_deployment' -> 'model' ->> 'status') FROM qflow.runs WHERE id = $id"
      cmp_ids+=",$id"
    done
  done
done
table "SELECT workflow, mode, count(*) AS runs,
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::numeric, 2) AS median_seconds,
              round(min(extract(epoch FROM finished_at - created_at))::numeric, 2) AS min_seconds,
              round(max(extract(epoch FROM finished_at - created_at))::numeric, 2) AS max_seconds
         FROM qflow.runs WHERE id IN ($cmp_ids) AND status = 'succeeded' GROUP BY 1, 2 ORDER BY 1, 2 DESC"
echo "SELECT qflow.status(id) and qflow.metrics(id) show any run in detail, e.g. SELECT qflow.metrics(${wf_ids%%,*});"
