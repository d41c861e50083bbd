#!/usr/bin/env bash
# Installs what corio needs on Debian 12 (as root, or through sudo), only if missing.
# Usage: scripts/install-deps.sh [extra packages...]
set -euo pipefail
packages=(cmake make g++ pkg-config liburing-dev libfmt-dev catch2 libhiredis-dev redis-server "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
