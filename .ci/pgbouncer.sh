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
# the server URL's user without a password, and PgBouncer logs in to the server with the
# URL's password, if any.
# QFLOW_PGB_PORT (default: derived from the checkout's path, like the cluster's) and
# QFLOW_PGB_DIR (an absolute path; config, log and pid file) make it handle another instance,
# e.g. one per test. As root it runs as the `postgres` user (.ci/lib.sh), its directory under
# /var/tmp.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$top/.ci/lib.sh"
port=${QFLOW_PGB_PORT:-$((20000 + $(printf '%s' "$top" | cksum | cut -d' ' -f1) % 20000))}
bin=/usr/sbin/pgbouncer

dir() { server_dir "${QFLOW_PGB_DIR:-}" "qflow-pgbouncer-$port" "$top/.pgbouncer"; }

running() {
  local d=$1
  [[ -f $d/pgbouncer.pid ]] && kill -0 "$(cat "$d/pgbouncer.pid")" 2>/dev/null
}

# url_part URL FIELD: user, password, host, port or rest (the path and query) of a
# postgres:// URL.
url_part() {
  local re='^postgres(ql)?://(([^:@/]+)(:([^@/]*))?@)?([^:/?]+)(:([0-9]+))?(/.*)?$'
  [[ $1 =~ $re ]] || { echo "pgbouncer.sh: not a postgres:// URL" >&2; exit 2; }
  case $2 in
    user) echo "${BASH_REMATCH[3]:-postgres}" ;;
    password) echo "${BASH_REMATCH[5]}" ;;
    host) echo "${BASH_REMATCH[6]}" ;;
    port) echo "${BASH_REMATCH[8]:-5432}" ;;
    rest) echo "${BASH_REMATCH[9]}" ;;
  esac
}

start() {
  local server=${1:?usage: pgbouncer.sh start SERVER_URL} d user
  [[ -x $bin ]] || apt_install pgbouncer
  d=$(dir)
  user=$(url_part "$server" user)
  mkdir -p "$d"
  if [[ $(id -u) -eq 0 ]]; then
    ensure_owner
    chown postgres: "$d"
  fi
  if ! running "$d"; then
    printf '"%s" ""\n' "$user" >"$d/userlist.txt"
    local password
    password=$(url_part "$server" password)
    cat >"$d/pgbouncer.ini" <<INI
; qflow throwaway PgBouncer: transaction pooling, every database of one server
[databases]
* = host=$(url_part "$server" host) port=$(url_part "$server" port)${password:+ password=$password}

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
    chmod 600 "$d/pgbouncer.ini"
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
