#!/usr/bin/env bash
# Installs what is missing, builds corio (release) with tests and examples, runs
# the whole test suite (unit tests, examples, packaging consumers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
ctest --preset release -j"$(nproc)"
