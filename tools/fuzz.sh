#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan + UBSan) and runs each
# for a bounded time, starting from its seed corpus in fuzz/corpus/<target>.
#
#   tools/fuzz.sh [seconds-per-target] [target ...]    default: 60, all
#   tools/fuzz.sh --replay [target ...]                 run every seed once
#
# Environment: PYASYNC_FUZZ_BUILD (build tree, default build-fuzz), CC
# (default clang), JOBS.  New inputs go to <build>/corpus-<target> (the seed
# directory is never written); a failing input is saved as
# <build>/artifacts/<target>-crash-*, and the line to replay it is printed.
# Exits 0 when every target ran its time without a finding, 77 when clang
# or libFuzzer is missing (ctest counts that as skipped), 1 otherwise.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PYASYNC_FUZZ_BUILD:-$ROOT/build-fuzz}"
CC="${CC:-clang}"
case "$CC" in *clang*) ;; *) CC=clang ;; esac
JOBS="${JOBS:-$(nproc)}"

REPLAY=0
SECS=60
if [ "${1:-}" = --replay ]; then REPLAY=1; shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECS="$1"; shift; fi
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  for d in "$ROOT"/fuzz/corpus/*/; do TARGETS+=("$(basename "$d")"); done
fi

# libFuzzer ships in libclang-rt-*-dev: without it there is nothing to run.
probe="$(mktemp -d)"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! command -v "$CC" >/dev/null ||
   ! "$CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
  echo "fuzz.sh: $CC cannot build libFuzzer targets; skipped:"
  cat "$probe/err" 2>/dev/null | head -5
  rm -rf "$probe"
  exit 77
fi
rm -rf "$probe"

echo "== configure and build $BUILD ($CC)"
mkdir -p "$BUILD"
CC="$CC" cmake -S "$ROOT/fuzz" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/build.log" 2>&1 &&
  cmake --build "$BUILD" -j"$JOBS" >>"$BUILD/build.log" 2>&1 ||
  { tail -40 "$BUILD/build.log"; echo "fuzz.sh: build failed (log: $BUILD/build.log)"; exit 1; }

# ASan and UBSan stop at the first finding; libFuzzer's own per-input leak
# check is off (-detect_leaks=0): CPython's caches and free lists make every
# input look like it leaks.  LeakSanitizer still runs once at exit, with the
# suppressions the spec runs use.  Python's allocator is the system one
# (fuzz/harness.c), so ASan sees every Python object pyasync touches.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$ROOT/tools/suppressions/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/tools/suppressions/ubsan.supp"

fail=0
mkdir -p "$BUILD/artifacts"
for t in "${TARGETS[@]}"; do
  bin="$BUILD/fuzz_$t"
  seeds="$ROOT/fuzz/corpus/$t"
  [ -x "$bin" ] || { echo "FAIL  $t: no target $bin"; fail=1; continue; }
  log="$BUILD/$t.log"
  if [ $REPLAY = 1 ]; then
    "$bin" -detect_leaks=0 "$seeds"/* >"$log" 2>&1
  else
    mkdir -p "$BUILD/corpus-$t"
    "$bin" "$BUILD/corpus-$t" "$seeds" -max_total_time="$SECS" -timeout=25 \
      -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$t-" >"$log" 2>&1
  fi
  rc=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  if [ $rc -eq 0 ]; then
    echo "PASS  $t${runs:+ ($runs inputs)}"
  else
    fail=1
    echo "FAIL  $t (exit $rc): log $log"
    grep -E "ERROR|runtime error|oracle failed|SUMMARY" "$log" | head -10 | sed 's/^/    /'
    art="$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)"
    [ -n "$art" ] && echo "    replay: $bin $art"
  fi
done
exit $fail
