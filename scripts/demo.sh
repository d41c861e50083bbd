#!/usr/bin/env bash
# Installs what is missing, builds corio (release) and runs the main demo: the tour
# (examples/tour.cpp), every idea of the asyncio / multiprocessing walkthrough in order.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target tour
./build/release/examples/tour
