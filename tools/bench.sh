#!/usr/bin/env bash
# tools/bench.sh - the benchmark suite (bench/, issue 7); not part of the tests.
# Builds a Release pyasync in build-bench/ and the minimal bridge beside it,
# runs bench/run.lua under stock lua5.4 and in the host binary, prints the
# table and writes bench/results.json.
#   tools/bench.sh [section...]     sections: call await gather loop wakeup
#                                   callback stream queue buffer dlpack memory
#                                   pipe (default: all)
#   BENCH_SCALE=0.1 tools/bench.sh  fewer iterations (a quick look)
#   PYASYNC_LOOP=uvloop tools/bench.sh   the same on uvloop
#   BENCH_OUT=/tmp/r.json tools/bench.sh  write the JSON elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
B=build-bench
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DPYASYNC_TESTS=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null

# The minimal bridge links the libpython that pyasync embeds.
PY=$(sed -n 's/^Python3_EXECUTABLE:[A-Z]*=//p' "$B/CMakeCache.txt")
PY=${PY:-/usr/bin/python3}
PYCFG="$PY-config"
[ -x "$PYCFG" ] || PYCFG=python3-config
cc -O2 -Wall -Wextra -shared -fPIC bench/minbridge.c -o "$B/minbridge.so" \
  $(pkg-config --cflags lua5.4) $("$PYCFG" --includes) $("$PYCFG" --embed --ldflags)

export LUA_CPATH="$B/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;"
parts="$B/bench-parts.jsonl"
: > "$parts"
all=(memory call await gather loop wakeup callback stream queue buffer dlpack pipe)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${all[@]}")
has() { local s; for s in "${want[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
# Memory first, in a process of its own: its RSS figures start clean.
if has memory; then lua5.4 bench/run.lua --out "$parts" memory; fi
rest=()
for s in "${want[@]}"; do [ "$s" = memory ] || rest+=("$s"); done
if [ ${#rest[@]} -gt 0 ]; then lua5.4 bench/run.lua --out "$parts" "${rest[@]}"; fi
# The host binary runs the script as a task: calls and awaits there too.
host=()
for s in call await; do has "$s" && host+=("$s"); done
if [ ${#host[@]} -gt 0 ]; then
  "$B/pyasync" bench/run.lua --process host --out "$parts" "${host[@]}"
fi
# Both threads on one CPU (a container limited to one CPU, a busy machine):
# informative, no targets.
if has await && command -v taskset >/dev/null; then
  taskset -c 0 lua5.4 bench/run.lua --process "lua5.4, 1 CPU" --no-targets --out "$parts" await
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
meta=$(printf '{"repeats": 7, "load_before": "%s", "load_after": "%s", "seconds": %d, "loop": "%s", "scale": "%s", "date": "%s"}' \
  "$load_before" "$load_after" $(( $(date +%s) - start )) "${PYASYNC_LOOP:-asyncio}" \
  "${BENCH_SCALE:-1}" "$(date -u +%Y-%m-%dT%H:%MZ)")
out=bench/results.json
[ "${PYASYNC_LOOP:-asyncio}" = asyncio ] || out="bench/results-${PYASYNC_LOOP}.json"
out=${BENCH_OUT:-$out}
"$PY" bench/report.py "$parts" "$out" "$meta"
echo "written: $out"
case "${load_before%% *}" in
  0.*) ;;
  *) echo "warning: load average was $load_before at the start: other work shared the CPUs" ;;
esac
