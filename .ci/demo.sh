#!/usr/bin/env bash
# The demo behind `make demo`: migrate, start two workers, run the probe workflows through
# their paths (plain, retries, a permanent failure), show status and metrics, stop the workers.
set -euo pipefail
qflow=${QFLOW_BIN:-bin/qflow}
: "${DATABASE_URL:?}"
export DATABASE_URL

logdir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== qflow migrate"
"$qflow" migrate

echo "== starting two workers (logs in $logdir)"
for i in 1 2; do
  "$qflow" worker --classes cpu,gpu --id "demo-worker-$i" >"$logdir/worker-$i.log" 2>&1 &
  pids+=($!)
done
sleep 1

echo
echo "== probe_chain: a->b->c->d->e, each step sleeps 200 ms"
"$qflow" start probe_chain --input '{"sleep_ms": 200}' --wait

echo
echo "== probe_diamond: step b fails twice and is retried with backoff"
"$qflow" start probe_diamond --input '{"fail": {"b": 2}, "seed": 1}' --wait

echo
echo "== probe_diamond: step c fails permanently; the run fails and its other work is cancelled"
"$qflow" start probe_diamond --input '{"fatal": ["c"], "sleep_ms": {"b": 500}}' --wait || true

echo
echo "== 200 runs started by one SQL INSERT ... SELECT"
psql "$DATABASE_URL" -qtAc "INSERT INTO qflow.runs (workflow, input) SELECT 'probe_chain', jsonb_build_object('seed', g) FROM generate_series(1, 200) g" >/dev/null
for _ in $(seq 1 300); do
  left=$(psql "$DATABASE_URL" -qtAc "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')")
  [[ $left == 0 ]] && break
  sleep 0.2
done

echo
echo "== qflow list"
"$qflow" list
echo
echo "== SELECT qflow.metrics(id) of the last run"
psql "$DATABASE_URL" -qtAc "SELECT jsonb_pretty(qflow.metrics((SELECT max(id) FROM qflow.runs)))"
