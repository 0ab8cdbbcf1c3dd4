#!/usr/bin/env bash
# Starts (or reuses) a throwaway Postgres cluster for this checkout and prints its URL.
#
#   .ci/postgres.sh start   start it if needed, print DATABASE_URL
#   .ci/postgres.sh stop    stop it
#   .ci/postgres.sh restart stop it (fast: clients are disconnected, running transactions roll
#                           back, a clean checkpoint) and start it again
#   .ci/postgres.sh restart-immediate
#                           stop it the way a crash would (no checkpoint; start replays the WAL)
#                           and start it again
#   .ci/postgres.sh url     print the URL without starting anything
#   .ci/postgres.sh db NAME start it if needed, create database NAME if missing, print its URL
#   .ci/postgres.sh standby PRIMARY_URL
#                           make it a streaming replica of the cluster at PRIMARY_URL
#                           (pg_basebackup, hot standby) if it is not a cluster yet, start it,
#                           print its URL; `stop` stops it
#
# The cluster lives in .pgdata/ (git-ignored). Its port is derived from the checkout's path,
# so two clones on one machine do not collide. When run as root the server runs as the
# `postgres` user, which cannot enter a private checkout, so the data then lives under
# /var/tmp and .pgdata is a link to it.
#
# QFLOW_PG_PORT and QFLOW_PG_DATA (an absolute path) make it handle another cluster, e.g. the
# one the chaos test restarts without disturbing the tests that share this one.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$top/.ci/lib.sh"
port=${QFLOW_PG_PORT:-$((40000 + $(printf '%s' "$top" | cksum | cut -d' ' -f1) % 20000))}
url="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"
link="$top/.pgdata"

find_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/pg_ctl && -x $d/initdb ]] && { echo "$d"; return 0; }
  done
  return 1
}

install_postgres() {
  # Keep the package's own cluster from being created and started: we run our own.
  as_root mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.d/qflow.conf >/dev/null
  apt_install postgresql postgresql-contrib
}

datadir() { server_dir "${QFLOW_PG_DATA:-}" "qflow-pg-$port" "$link"; }

start() {
  local primary=${1:-} bindir data
  bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir); }
  data=$(datadir)
  if [[ $(id -u) -eq 0 ]]; then
    ensure_owner
    mkdir -p "$data"
    chown postgres: "$data"
    chmod 700 "$data"
    [[ -z ${QFLOW_PG_DATA:-} ]] && [[ -L $link || ! -e $link ]] && ln -sfn "$data" "$link"
  fi
  if [[ -n $primary && ! -f $data/PG_VERSION ]]; then
    # A copy of the primary, its config included, that streams from it (-R: standby.signal
    # and primary_conninfo); only where it listens is its own.
    # (The primary's socket in its data directory is not copied, and pg_basebackup says so.)
    as_owner "$bindir/pg_basebackup" -d "$primary" -D "$data" -R -X stream -c fast 2> >(grep -v 'skipping special file' >&2)
    cat >>"$data/postgresql.conf" <<CONF
# qflow throwaway standby of $primary
port = $port
unix_socket_directories = '$data'
CONF
  elif [[ ! -f $data/PG_VERSION ]]; then
    as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
# qflow throwaway cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
max_connections = 400
shared_buffers = 512MB
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
max_wal_size = 4GB
checkpoint_timeout = 15min
log_min_messages = warning
log_min_error_statement = panic
CONF
  fi
  if ! as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
  fi
  echo "$url"
}

stop() {
  local mode=${1:-fast} bindir data
  bindir=$(find_bindir) || return 0
  data=$(datadir)
  [[ -f $data/PG_VERSION ]] || return 0
  as_owner "$bindir/pg_ctl" -D "$data" -m "$mode" -w stop >/dev/null 2>&1 || true
}

createdb() {
  local name=$1 base
  [[ $name =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "postgres.sh: bad database name $name" >&2; exit 2; }
  base=$(start)
  if [[ -z $(psql "$base" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
    psql "$base" -qc "CREATE DATABASE $name" >/dev/null
  fi
  echo "${base/\/postgres\?//$name?}"
}

case ${1:-start} in
  start) start ;;
  db) createdb "${2:?database name}" ;;
  standby) start "${2:?primary URL}" ;;
  stop) stop ;;
  url) echo "$url" ;;
  restart) stop fast; start ;;
  restart-immediate) stop immediate; start ;;
  *) echo "usage: $0 start|stop|restart|restart-immediate|url|db NAME|standby PRIMARY_URL" >&2; exit 2 ;;
esac
