#!/usr/bin/env bash
# Validate the QuantumFlow Prometheus rules, scrape config, rule unit tests and
# the Grafana dashboard.
#
#   deploy/prometheus/check.sh          # from any working directory
#   PROMTOOL=/path/to/promtool deploy/prometheus/check.sh
#
# When promtool is not on PATH, Debian's `prometheus` package is installed with
# apt-get (as root, or through sudo). Package installation is done with a
# policy-rc.d that forbids starting services, so no Prometheus server is left
# running afterwards.
set -euo pipefail

script_dir="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -P -- "${script_dir}/../.." && pwd)"
cd "${repo_root}"

RULES=deploy/prometheus/alerts.yml
CONFIG=deploy/prometheus/prometheus.yml
TESTS=deploy/prometheus/alerts_test.yml
DASHBOARD=deploy/grafana/qflow.json

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'check.sh: error: %s\n' "$*" >&2; exit 1; }

# Everything created along the way is removed on exit.
AS_ROOT=()          # (sudo) when root rights are needed and we are not root
tmp_files=()        # our own temporary files
root_files=()       # files created with root rights (policy-rc.d)
cleanup() {
  local f
  for f in "${tmp_files[@]+"${tmp_files[@]}"}"; do rm -f -- "${f}" || true; done
  for f in "${root_files[@]+"${root_files[@]}"}"; do
    ${AS_ROOT[@]+"${AS_ROOT[@]}"} rm -f -- "${f}" || true
  done
}
trap cleanup EXIT

prometheus_pids() { pgrep -x prometheus 2>/dev/null | sort || true; }

install_promtool() {
  if [[ ${EUID} -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      AS_ROOT=(sudo)
    else
      die "promtool not found and not running as root, and sudo is not available.
  Install promtool yourself (Debian/Ubuntu: apt-get install --no-install-recommends prometheus)
  or point PROMTOOL=/path/to/promtool at an existing binary."
    fi
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "promtool not found and apt-get is not available; install promtool (part of Prometheus) and re-run, or set PROMTOOL."

  # Never let the package start a service: invoke-rc.d and deb-systemd-invoke
  # both honour /usr/sbin/policy-rc.d (exit 101 = action forbidden). Keep an
  # existing policy (e.g. the Docker one) untouched; otherwise add a temporary one.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    log "adding a temporary /usr/sbin/policy-rc.d to keep services from starting"
    root_files+=(/usr/sbin/policy-rc.d)
    printf '#!/bin/sh\n# temporary, added by deploy/prometheus/check.sh\nexit 101\n' |
      "${AS_ROOT[@]+"${AS_ROOT[@]}"}" tee /usr/sbin/policy-rc.d >/dev/null
    ${AS_ROOT[@]+"${AS_ROOT[@]}"} chmod 0755 /usr/sbin/policy-rc.d
  fi

  local before
  before="$(prometheus_pids)"
  local apt=(${AS_ROOT[@]+"${AS_ROOT[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get)
  local updated=0
  local candidate
  candidate="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [[ -z "${candidate}" || "${candidate}" == "(none)" ]]; then
    log "apt-get update (package lists do not know 'prometheus' yet)"
    "${apt[@]}" update -qq
    updated=1
  fi
  log "installing Debian package 'prometheus' (for promtool)"
  if ! "${apt[@]}" install -y -qq --no-install-recommends prometheus >/dev/null; then
    [[ ${updated} -eq 1 ]] && die "apt-get install prometheus failed"
    log "install failed, retrying after apt-get update (stale package lists?)"
    "${apt[@]}" update -qq
    "${apt[@]}" install -y -qq --no-install-recommends prometheus >/dev/null ||
      die "apt-get install prometheus failed"
  fi

  # Belt and braces: stop a server the installation may have started anyway.
  local after pid
  after="$(prometheus_pids)"
  for pid in $(comm -13 <(printf '%s\n' "${before}") <(printf '%s\n' "${after}")); do
    [[ -n "${pid}" ]] || continue
    log "stopping Prometheus server (pid ${pid}) started by the package installation"
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
      ${AS_ROOT[@]+"${AS_ROOT[@]}"} systemctl stop prometheus.service || true
      ${AS_ROOT[@]+"${AS_ROOT[@]}"} systemctl disable prometheus.service >/dev/null 2>&1 || true
    fi
    if kill -0 "${pid}" 2>/dev/null; then
      ${AS_ROOT[@]+"${AS_ROOT[@]}"} kill "${pid}" || true
    fi
  done
}

if [[ -n "${PROMTOOL:-}" ]]; then
  [[ -x "${PROMTOOL}" ]] || die "PROMTOOL=${PROMTOOL} is not an executable file"
elif command -v promtool >/dev/null 2>&1; then
  PROMTOOL="$(command -v promtool)"
elif [[ -x /usr/bin/promtool ]]; then
  PROMTOOL=/usr/bin/promtool
else
  log "promtool not found"
  install_promtool
  PROMTOOL="$(command -v promtool || echo /usr/bin/promtool)"
  [[ -x "${PROMTOOL}" ]] || die "promtool is still missing after installing the prometheus package"
fi
log "using $("${PROMTOOL}" --version 2>&1 | head -n1) (${PROMTOOL})"

log "promtool check rules ${RULES}"
"${PROMTOOL}" check rules "${RULES}"

log "promtool check config ${CONFIG}"
"${PROMTOOL}" check config "${CONFIG}"

log "promtool test rules ${TESTS}"
"${PROMTOOL}" test rules "${TESTS}"

# Dashboard: valid JSON, and every PromQL query parses (Grafana variables are
# replaced by representative values and the queries checked as recording rules).
log "checking ${DASHBOARD}"
if command -v jq >/dev/null 2>&1; then
  jq empty "${DASHBOARD}"
  tmp_rules="$(mktemp "${TMPDIR:-/tmp}/qflow-dashboard-rules.XXXXXX.yml")"
  tmp_files+=("${tmp_rules}")
  {
    echo 'groups:'
    echo '  - name: dashboard-queries'
    echo '    rules:'
    i=0
    while IFS= read -r expr; do
      i=$((i + 1))
      expr="${expr//\$__rate_interval/5m}"
      expr="${expr//\$__interval/1m}"
      expr="${expr//\$__range/6h}"
      expr="${expr//\$\{workflow:regex\}/.*}"
      expr="${expr//\$workflow/.*}"
      # ${expr} is a JSON string, which is also a valid YAML double-quoted scalar.
      printf '      - record: dashboard:query_%d\n        expr: %s\n' "${i}" "${expr}"
    done < <(jq -c '.. | objects | select(has("expr")) | .expr' "${DASHBOARD}")
  } >"${tmp_rules}"
  n="$(jq '[.. | objects | select(has("expr"))] | length' "${DASHBOARD}")"
  "${PROMTOOL}" check rules "${tmp_rules}" >/dev/null ||
    die "a PromQL query in ${DASHBOARD} does not parse (see promtool output above)"
  echo "  SUCCESS: valid JSON, ${n} PromQL queries parse"
elif command -v python3 >/dev/null 2>&1; then
  python3 -m json.tool "${DASHBOARD}" >/dev/null
  echo "  SUCCESS: valid JSON (install jq to also check the PromQL queries)"
else
  log "neither jq nor python3 found; skipping the dashboard check"
fi

log "all checks passed"
