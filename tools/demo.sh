#!/usr/bin/env bash
# Newcomer's first run: install what is missing, build, run an example.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
build/pyasync examples/await_coroutine.lua
