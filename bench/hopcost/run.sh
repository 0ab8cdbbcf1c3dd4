#!/usr/bin/env bash
# Counts the CPU instructions Postgres spends on a run's hops, for the working tree and for a
# base commit, in one invocation: a figure a noisy, shared machine cannot move.
#
#   bench/hopcost/run.sh [BASE]     (BASE: a commit, default 9a016d8, the SQL before sql/schema)
#
# Each build's schema is made by its own benchmark binary (bench/engine -keep-db: migrations and
# the probe workflows) in a throwaway cluster. Then, on a fresh copy of that cluster each time,
# a single-user Postgres under valgrind (cachegrind, no cache simulation) runs hops.sql (one run
# at a time: its INSERT, its first claim, one finish_steps per hop, eagerly dispatched) and
# batches.sql (ten runs per INSERT, claim and finish_steps call, as a busy worker batches them).
# Two run counts per script, so start-up and planning cancel out: instructions per run =
# (I(n2) - I(n1)) / (n2 - n1). A probe_chain run is five steps. Prints a table and writes it to
# bench/results/hopcost-latest.md.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$top/.ci/lib.sh"
base=${1:-9a016d8}
out=$top/bench/results/hopcost-latest.md
command -v valgrind >/dev/null || apt_install valgrind
bindir=$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres | sort -V | tail -1)")

work=/var/tmp/qflow-hopcost-$$
mkdir -p "$work"
port=$((42000 + $$ % 1000))
cleanup() {
  QFLOW_PG_PORT=$port QFLOW_PG_DATA=$work/cluster "$top/.ci/postgres.sh" stop >/dev/null 2>&1 || true
  git -C "$top" worktree remove --force "$work/base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building bench/engine at $base and at the working tree" >&2
git -C "$top" worktree add --detach "$work/base" "$base" >/dev/null 2>&1
(cd "$work/base" && go build -o "$work/bench-base" ./bench/engine)
(cd "$top" && go build -o "$work/bench-head" ./bench/engine)

echo "making each build's schema in a throwaway cluster" >&2
export QFLOW_PG_PORT=$port QFLOW_PG_DATA=$work/cluster
url=$("$top/.ci/postgres.sh" start)
for b in base head; do
  flags=(-systems engine,river -in-flight 5 -reps 1 -warmup 1s -measure 1s -idle-hops 0 -processes= -bulk 0 -history 0 -keep-db -out "$work/out-$b")
  help=$("$work/bench-$b" -h 2>&1 || true)   # (grep -q in a pipe would cut it short: SIGPIPE)
  for f in pgbouncer map; do
    if grep -qE -- "^ +-$f( |$)" <<<"$help"; then
      [[ $f == pgbouncer ]] && flags+=(-pgbouncer=false) || flags+=(-map 0)
    fi
  done
  QFLOW_BENCH_SERVER_URL=$url "$work/bench-$b" "${flags[@]}" >"$work/keep-$b.log" 2>&1 || { tail "$work/keep-$b.log" >&2; exit 1; }
  psql "$url" -qXc "ALTER DATABASE qflow_bench RENAME TO hop_$b"
  # The same empty tables for both: the benchmark leaves River jobs behind.
  psql "$(sed "s#/postgres?#/hop_$b?#" <<<"$url")" -qXc "TRUNCATE qflow.runs, river.river_job CASCADE" -c "VACUUM ANALYZE"
done
"$top/.ci/postgres.sh" stop >/dev/null
unset QFLOW_PG_PORT QFLOW_PG_DATA

# instructions DB SCRIPT RUNS: the instructions of a single-user backend running SCRIPT with RUNS
instructions() {
  local db=$1 script=$2 runs=$3 d=$work/copy
  rm -rf "$d" && cp -a "$work/cluster/." "$d"
  [[ $(id -u) -eq 0 ]] && chown -R postgres "$d"
  printf 'SET synchronous_commit = off;\n\nSET hopcost.runs = %d;\n\n%s\n\n' "$runs" "$(cat "$top/bench/hopcost/$script")" >"$work/in.sql"
  chmod a+r "$work/in.sql"
  as_owner valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$bindir/postgres" --single -j -D "$d" -c shared_preload_libraries= -c autovacuum=off "$db" \
    <"$work/in.sql" >"$work/single.log" 2>&1
  if grep -q "ERROR" "$work/single.log"; then
    grep -m3 "ERROR" "$work/single.log" >&2
    return 1
  fi
  grep -o "I *refs: *[0-9,]*" "$work/single.log" | tr -d ', ' | cut -d: -f2
}

[[ $(id -u) -eq 0 ]] && chmod a+rx "$work"
{
  echo "Instructions Postgres spends per probe_chain run (five steps), \`bench/hopcost/run.sh $base\`"
  echo "($(date -u +%Y-%m-%dT%H:%MZ), working tree at $(git -C "$top" rev-parse --short HEAD)$(git -C "$top" diff --quiet || echo ' + changes')):"
  echo
  echo "| scenario | $base | working tree | ratio |"
  echo "|---|---:|---:|---:|"
} >"$work/table.md"
for s in "hops.sql 5 25 one run at a time" "batches.sql 10 50 ten runs per call"; do
  read -r script n1 n2 label <<<"$s"
  declare -A per=()
  for b in base head; do
    echo "counting $script for $b (valgrind: a minute or two)" >&2
    i1=$(instructions "hop_$b" "$script" "$n1")
    i2=$(instructions "hop_$b" "$script" "$n2")
    per[$b]=$(( (i2 - i1) / (n2 - n1) ))
  done
  ratio=$(awk -v a="${per[head]}" -v b="${per[base]}" 'BEGIN { printf "%.3f", a / b }')
  printf '| %s | %d | %d | %s |\n' "$label" "${per[base]}" "${per[head]}" "$ratio" >>"$work/table.md"
done
mkdir -p "$(dirname "$out")"
cp "$work/table.md" "$out"
cat "$out"
