#!/usr/bin/env bash
# Installs what is missing, builds corio (release) and runs the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target chain
./build/release/examples/chain
