#!/usr/bin/env bash
# Starts and stops a throwaway PgBouncer in transaction pooling mode in front of a Postgres
# server (Debian's pgbouncer, installed when missing, as .ci/postgres.sh installs Postgres).
#
#   .ci/pgbouncer.sh start SERVER_URL   start it if needed; print SERVER_URL with PgBouncer's
#                                       host and port in place of the server's
#   .ci/pgbouncer.sh stop               stop it (SIGTERM: clients and servers dropped at once)
#   .ci/pgbouncer.sh restart SERVER_URL kill it (SIGKILL, like a crash) and start it again
#
# Every database of the server is reachable through it under its own name; clients log in as
# the server URL's user, without a password (the throwaway clusters trust 127.0.0.1).
# QFLOW_PGB_PORT (default: derived from the checkout's path, like the cluster's) and
# QFLOW_PGB_DIR (an absolute path; config, log and pid file) make it handle another instance,
# e.g. one per test. PgBouncer refuses to run as root: as root it runs as the `postgres` user,
# and its directory then lives under /var/tmp.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${QFLOW_PGB_PORT:-$((20000 + $(printf '%s' "$top" | cksum | cut -d' ' -f1) % 20000))}
bin=/usr/sbin/pgbouncer

install_pgbouncer() {
  echo "pgbouncer.sh: pgbouncer not found; installing Debian's pgbouncer package" >&2
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "pgbouncer.sh: need root or sudo to install pgbouncer" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
}

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

dir() {
  if [[ -n ${QFLOW_PGB_DIR:-} ]]; then
    echo "$QFLOW_PGB_DIR"
  elif [[ $(id -u) -eq 0 ]]; then
    echo "/var/tmp/qflow-pgbouncer-$port"
  else
    echo "$top/.pgbouncer"
  fi
}

running() {
  local d=$1
  [[ -f $d/pgbouncer.pid ]] && kill -0 "$(cat "$d/pgbouncer.pid")" 2>/dev/null
}

# url_part URL FIELD: user, host, port or rest (the path and query) of a postgres:// URL.
url_part() {
  local re='^postgres(ql)?://([^@/]+@)?([^:/?]+)(:([0-9]+))?(/.*)?$'
  [[ $1 =~ $re ]] || { echo "pgbouncer.sh: not a postgres:// URL without a password: $1" >&2; exit 2; }
  case $2 in
    user) local u=${BASH_REMATCH[2]%@}; echo "${u:-postgres}" ;;
    host) echo "${BASH_REMATCH[3]}" ;;
    port) echo "${BASH_REMATCH[5]:-5432}" ;;
    rest) echo "${BASH_REMATCH[6]}" ;;
  esac
}

start() {
  local server=${1:?usage: pgbouncer.sh start SERVER_URL} d user
  [[ -x $bin ]] || install_pgbouncer
  d=$(dir)
  user=$(url_part "$server" user)
  mkdir -p "$d"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$d"
  fi
  if ! running "$d"; then
    printf '"%s" ""\n' "$user" >"$d/userlist.txt"
    cat >"$d/pgbouncer.ini" <<INI
; qflow throwaway PgBouncer: transaction pooling, every database of one server
[databases]
* = host=$(url_part "$server" host) port=$(url_part "$server" port)

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $d/userlist.txt
admin_users = $user
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
server_connect_timeout = 5
logfile = $d/pgbouncer.log
pidfile = $d/pgbouncer.pid
INI
    [[ $(id -u) -eq 0 ]] && chown postgres: "$d"/*
    as_owner "$bin" -q -d "$d/pgbouncer.ini"
  fi
  # -d returns once it forked; wait until it accepts connections.
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  echo "postgres://${user}@127.0.0.1:${port}$(url_part "$server" rest)"
}

stop() {
  local sig=${1:-TERM} d pid
  d=$(dir)
  running "$d" || return 0
  pid=$(cat "$d/pgbouncer.pid")
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  rm -f "$d/pgbouncer.pid"
}

case ${1:-} in
  start) start "${2:-}" ;;
  stop) stop TERM ;;
  restart) stop KILL; start "${2:-}" ;;
  *) echo "usage: $0 start SERVER_URL|stop|restart SERVER_URL" >&2; exit 2 ;;
esac
