#!/usr/bin/env bash
# The test command: install what is missing, build, run every test (specs
# in both modes, examples, packaging, sanitizer builds).  Ends with ctest's
# summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j2 --timeout 600
