#!/usr/bin/env bash
# Installs Debian's headless-capable chromium for the web view's browser test, if missing.
# `make test-ui` calls it; it is idempotent and quiet when chromium is already there.
set -euo pipefail

for b in chromium chromium-browser; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done

echo "install-chromium.sh: chromium not found; installing Debian's chromium package" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-chromium.sh: need root or sudo to install chromium" >&2; exit 1; }
  sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
# Fonts: without them headless chromium renders text as boxes in screenshots.
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  chromium fonts-dejavu-core fonts-liberation >/dev/null
command -v chromium >/dev/null
