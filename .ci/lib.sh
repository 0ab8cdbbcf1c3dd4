# Helpers of the .ci scripts that run throwaway servers (postgres.sh, pgbouncer.sh); sourced.

# as_root CMD...: run CMD as root, through sudo when not root.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
    return
  fi
  command -v sudo >/dev/null || { echo "$(basename "$0"): need root or sudo to run: $*" >&2; exit 1; }
  sudo "$@"
}

# apt_install PACKAGE...: install Debian packages, without their recommendations.
apt_install() {
  echo "$(basename "$0"): installing Debian's $* (missing)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The servers' owner: as root the postgres user, since Postgres and PgBouncer refuse to run
# as root (and as the postgres user cannot enter a private checkout, their directories then
# live under /var/tmp); else whoever runs the script.

# ensure_owner creates the postgres user when root and it is missing.
ensure_owner() {
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

# as_owner CMD...: run CMD as the servers' owner.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    ensure_owner
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# server_dir GIVEN NAME LOCAL: where a server's files live: GIVEN when set, else /var/tmp/NAME
# as root, else LOCAL (in the checkout).
server_dir() {
  if [[ -n $1 ]]; then
    echo "$1"
  elif [[ $(id -u) -eq 0 ]]; then
    echo "/var/tmp/$2"
  else
    echo "$3"
  fi
}
