#!/usr/bin/env bash
# The demo behind `make demo`: migrate, seed task executions if there are none, start workers
# (the gpu class on qflow-gpu when this machine has a GPU and the binary, else on the CPU
# backend), trigger one run of each ML pipeline with SQL inserts, show their steps live, and
# print both models' held-out figures with their 95% intervals next to their baselines (and the
# complexity labels' ceiling). Then challengers: each pipeline again with the other seeds of
# DEMO_SEEDS (default "1 2 3"), and the champion/challenger decisions deployment made; a
# complexity retrain on unchanged data (its cached steps and the time they saved) and a
# three-configuration hyperparameter sweep (each configuration's validation loss). Then
# each pipeline runs alone in workflow mode and in legacy mode (one job per run),
# DEMO_COMPARE_RUNS times each, to compare end-to-end times. It ends with the registry as
# `qflow models` prints it and where to look. It stops its workers and finishes by itself.
set -euo pipefail
qflow=${QFLOW_BIN:-bin/qflow}
qflow_gpu=${QFLOW_GPU_BIN:-bin/qflow-gpu}
limit=${DEMO_TIMEOUT_S:-300}
compare=${DEMO_COMPARE_RUNS:-1}
read -r -a seeds <<<"${DEMO_SEEDS:-1 2 3}"
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
seeded=$("$qflow" seed-data --if-empty --rows "${DEMO_ROWS:-20000}")
echo "$seeded"
ceiling=$(sed -n 's/^ceiling: \([0-9.]*\) .*/\1/p' <<<"$seeded")

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

# The architecture corpus: the standard library and the module cache, the pipeline's default,
# named here so that workers need no Go toolchain of their own.
roots=()
if goroot=$(go env GOROOT 2>/dev/null) && [[ -n $goroot ]]; then roots+=("\"$goroot/src\""); fi
if modcache=$(go env GOMODCACHE 2>/dev/null) && [[ -d $modcache ]]; then roots+=("\"$modcache\""); fi
arch_roots=$(IFS=,; echo "[${roots[*]}]")
arch_input() { if ((${#roots[@]})); then echo "{\"roots\": $arch_roots, \"seed\": $1}"; else echo "{\"seed\": $1}"; fi; }
complexity_input() { echo "{\"days_back\": 30, \"seed\": $1}"; }

# watch prints each run's steps whenever they change, until every run has finished.
watch() {
  local ids=$1 start=$SECONDS last="" now
  while :; do
    now=$(sql "SELECT string_agg(format('run %s %-21s %-9s %s', r.id, r.workflow, r.status,
                 coalesce((SELECT string_agg(so.step || '=' || so.status, ' ' ORDER BY so.position, so.task NULLS FIRST)
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

# run_pair starts one run of each pipeline with a seed, shows them and fails the demo if either
# fails; it leaves their ids in $pair.
run_pair() {
  local values="('complexity_training', '$(complexity_input "$1")'), ('architecture_learning', '$(arch_input "$1")')"
  echo "INSERT INTO qflow.runs (workflow, input) VALUES $values"
  pair=$(sql "INSERT INTO qflow.runs (workflow, input) VALUES $values RETURNING id" | paste -sd,)
  watch "$pair"
  if [[ $(sql "SELECT count(*) FROM qflow.runs WHERE id IN ($pair) AND status <> 'succeeded'") != 0 ]]; then
    table "SELECT id, workflow, status, error FROM qflow.runs WHERE id IN ($pair)"
    exit 1
  fi
}

# figure writes an estimate of the metrics jsonb as "value [lo, hi]" in SQL.
figure() { echo "format('%s [%s, %s]', round(($1 ->> 'value')::numeric, $2), round(($1 ->> 'lo')::numeric, $2), round(($1 ->> 'hi')::numeric, $2))"; }

echo
echo "== one run of each pipeline, started with SQL (seed ${seeds[0]})"
run_pair "${seeds[0]}"
wf_ids=$pair

echo
echo "== held-out figures with 95% intervals: model vs baseline, on the same rows"
table "SELECT m.name AS model, k.label AS metric, k.rows,
              CASE k.src WHEN 'cv' THEN $(figure "m.metrics -> 'cv' -> k.metric" 4) ELSE $(figure "m.metrics -> k.metric" 5) END AS model_value,
              CASE k.src WHEN 'cv' THEN $(figure "m.metrics -> 'cv' -> 'baseline' -> k.metric" 4) ELSE $(figure "m.metrics -> 'baseline' -> k.metric" 5) END AS baseline,
              CASE k.src WHEN 'cv' THEN m.metrics -> 'cv' ->> 'rows' ELSE m.metrics ->> 'held_out_rows' END AS n
         FROM ml.models m
         JOIN (VALUES ('complexity', 1, 'mse', 'MSE', 'holdout', ''), ('complexity', 2, 'r2', 'R²', 'holdout', ''),
                      ('complexity', 3, 'accuracy', 'accuracy (±0.1)', 'holdout', ''),
                      ('architecture', 1, 'accuracy', 'accuracy', 'holdout', ''), ('architecture', 2, 'macro_f1', 'macro-F1', 'holdout', ''),
                      ('architecture', 3, 'accuracy', 'accuracy', '5-fold CV', 'cv'), ('architecture', 4, 'macro_f1', 'macro-F1', '5-fold CV', 'cv'))
              k(name, ord, metric, label, rows, src) ON k.name = m.name
        WHERE m.training_run_id IN ($wf_ids)
        ORDER BY m.name DESC, k.ord"
[[ -n $ceiling ]] && echo "complexity: the best possible MSE (the labels' clamped noise, see seed-data above) is $ceiling; predicting the training mean is the baseline"
sql "SELECT format('architecture: %s packages (%s files, %s lines) under %s; baseline = the training side''s most common pattern',
                   output ->> 'packages', output ->> 'files', output ->> 'lines', output ->> 'roots')
       FROM qflow.step_runs WHERE run_id IN ($wf_ids) AND step = 'pattern_discovery'"

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
echo "== champion and challenger: both pipelines again with seeds ${seeds[*]:1}"
cc_ids=$wf_ids
for seed in "${seeds[@]:1}"; do
  run_pair "$seed"
  cc_ids+=",$pair"
done
echo
echo "Every record and package is held out or not by a hash of its identity, whatever the seed, so a challenger"
echo "is compared with the active model on held-out rows neither trained on (paired bootstrap, 95% intervals)."
table "SELECT m.name AS model, 'v' || m.version AS version, r.input ->> 'seed' AS seed, m.status, m.decision
         FROM ml.models m JOIN qflow.runs r ON r.id = m.training_run_id
        WHERE r.id IN ($cc_ids) ORDER BY m.name DESC, m.version"

echo
echo "== a retrain on unchanged data: the cached steps are reused, not run again"
first_cx=$(sql "SELECT id FROM qflow.runs WHERE id IN ($wf_ids) AND workflow = 'complexity_training'")
echo "INSERT INTO qflow.runs (workflow, input) VALUES ('complexity_training', '$(complexity_input "${seeds[0]}")')"
retrain=$(sql "INSERT INTO qflow.runs (workflow, input) VALUES ('complexity_training', '$(complexity_input "${seeds[0]}")') RETURNING id")
watch "$retrain"
table "SELECT sr.step, a.status AS this_run, c.run_id AS computed_by_run,
              round(extract(epoch FROM (o.finished_at - o.started_at))::numeric, 2) AS seconds_when_computed
         FROM qflow.step_runs sr
         JOIN qflow.step_attempts a ON a.run_id = sr.run_id AND a.step = sr.step AND a.attempt = sr.attempt
         JOIN qflow.step_cache c ON c.workflow = sr.workflow AND c.version = sr.version AND c.step = sr.step AND c.input_hash = sr.input_hash
         JOIN qflow.step_runs o ON o.run_id = c.run_id AND o.step = sr.step
        WHERE sr.run_id = $retrain AND a.status = 'cached' ORDER BY sr.step"
sql "SELECT format('the cache saved this retrain %s s of work; run %s took %s s end to end, the retrain %s s',
                   (SELECT round(sum(extract(epoch FROM (o.finished_at - o.started_at)))::numeric, 2)
                      FROM qflow.step_runs sr
                      JOIN qflow.step_attempts a ON a.run_id = sr.run_id AND a.step = sr.step AND a.attempt = sr.attempt AND a.status = 'cached'
                      JOIN qflow.step_cache c ON c.workflow = sr.workflow AND c.version = sr.version AND c.step = sr.step AND c.input_hash = sr.input_hash
                      JOIN qflow.step_runs o ON o.run_id = c.run_id AND o.step = sr.step
                     WHERE sr.run_id = r.id),
                   f.id, round(extract(epoch FROM f.finished_at - f.created_at)::numeric, 2),
                   round(extract(epoch FROM r.finished_at - r.created_at)::numeric, 2))
       FROM qflow.runs f, qflow.runs r WHERE f.id = $first_cx AND r.id = $retrain"

echo
echo "== a hyperparameter sweep: three configurations trained as map elements on the gpu class"
sweep_input='{"days_back": 30, "seed": '"${seeds[0]}"', "sweep": [{"learning_rate": 0.003}, {}, {"hidden_layers": [16], "dropout": [0.0]}]}'
echo "INSERT INTO qflow.runs (workflow, input) VALUES ('complexity_training', '$sweep_input')"
sweep=$(sql "INSERT INTO qflow.runs (workflow, input) VALUES ('complexity_training', '$sweep_input') RETURNING id")
watch "$sweep"
[[ $(sql "SELECT status FROM qflow.runs WHERE id = $sweep") == succeeded ]] || { table "SELECT id, status, error FROM qflow.runs WHERE id = $sweep"; exit 1; }
table "SELECT c.ord - 1 AS config, c.value -> 'config' ->> 'learning_rate' AS learning_rate,
              c.value -> 'config' ->> 'hidden_layers' AS hidden_layers,
              round((c.value ->> 'validation_loss')::numeric, 5) AS validation_loss,
              CASE WHEN c.ord - 1 = (sr.output ->> 'chosen')::int THEN 'chosen' ELSE '' END AS kept
         FROM qflow.step_runs sr, jsonb_array_elements(sr.output -> 'configs') WITH ORDINALITY c(value, ord)
        WHERE sr.run_id = $sweep AND sr.step = 'model_selection' ORDER BY 1"
echo "Validation rows are carved from the training side; the held-out rows judge only the chosen model."

echo
echo "== end to end, workflow mode vs legacy mode: each pipeline alone, $compare run(s) per mode, in turn"
cmp_ids=0
for wf in complexity_training architecture_learning; do
  input=$(complexity_input "${seeds[0]}")
  [[ $wf == architecture_learning ]] && input=$(arch_input "${seeds[0]}")
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

echo
echo "== the model registry (qflow models)"
"$qflow" models

echo
echo "== where to look"
echo "  qflow models complexity | qflow models architecture   every version, then the active one's evidence, loss curve and plots"
echo "  qflow ui, then http://127.0.0.1:8080/models           the same as pages: /models/complexity/<version>, /models/architecture/<version>"
echo "  SELECT name, version, status, decision, metrics -> 'decision' FROM ml.models ORDER BY name, version;"
echo "  SELECT qflow.status(id) and qflow.metrics(id) show any run in detail, e.g. SELECT qflow.metrics(${wf_ids%%,*});"
