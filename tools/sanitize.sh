#!/usr/bin/env bash
# Runs the spec suite under a checker: `asan` (AddressSanitizer + UBSan) and
# `tsan` (ThreadSanitizer) build their own trees (build-asan, build-tsan);
# `valgrind` runs the synchronous specs under memcheck with a plain build.
#
#   tools/sanitize.sh asan|tsan [spec ...]      default: every spec/*_spec.lua
#   tools/sanitize.sh valgrind [spec ...]       default: the sync specs
#
# Environment: PYASYNC_SAN_BUILD (the tree to build or, for valgrind, to
# use; valgrind defaults to build/), CC (compiler for the sanitizer builds),
# JOBS (build parallelism), SAN_KEEP_GOING=1 (report every finding rather
# than stop a process at its first: for surveying, not for CI),
# PYASYNC_FIXTURES (where the shared fixtures' state is, default
# build/fixtures: specs that declare `-- fixtures: postgres redis` need them
# running there; ctest's sanitize:* tests require them, by hand start them
# with tools/fixtures/postgres.sh start build/fixtures/postgres and the same
# for redis).
# Prints one line per spec, then a summary; exits non-zero if any spec
# failed or any process wrote a report.  docs/reliability.md has the why.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUPP="$ROOT/tools/suppressions"
MODE="${1:-}"
shift || true
JOBS="${JOBS:-$(nproc)}"

die() { echo "sanitize.sh: $*" >&2; exit 2; }

case "$MODE" in
  asan) SAN="address,undefined"; BUILD="${PYASYNC_SAN_BUILD:-$ROOT/build-asan}" ;;
  tsan) SAN="thread"; BUILD="${PYASYNC_SAN_BUILD:-$ROOT/build-tsan}" ;;
  valgrind) SAN=""; BUILD="${PYASYNC_SAN_BUILD:-$ROOT/build}" ;;
  *) die "usage: tools/sanitize.sh asan|tsan|valgrind [spec ...]" ;;
esac

# --- build ------------------------------------------------------------------
if [ -n "$SAN" ]; then
  echo "== configure and build $BUILD (-fsanitize=$SAN)"
  mkdir -p "$BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DPYASYNC_SANITIZE="$SAN" -DPYASYNC_TESTS=OFF >"$BUILD/build.log" 2>&1 &&
    cmake --build "$BUILD" -j"$JOBS" >>"$BUILD/build.log" 2>&1 ||
    { tail -40 "$BUILD/build.log"; die "build failed (full log: $BUILD/build.log)"; }
else
  [ -x "$BUILD/pyasync" ] || die "no $BUILD/pyasync: build it first (cmake -S . -B build && cmake --build build)"
  command -v valgrind >/dev/null || die "valgrind is not installed"
fi

# --- which specs ---------------------------------------------------------------
SPECS=()
if [ $# -gt 0 ]; then
  for s in "$@"; do
    case "$s" in
      */*) SPECS+=("$s") ;;
      *) SPECS+=("$ROOT/spec/${s%_spec.lua}_spec.lua") ;;
    esac
  done
elif [ "$MODE" = valgrind ]; then
  # The synchronous specs (buffer and dlpack: raw memory, the most to gain
  # from memcheck): no loop-thread timing, so memcheck's
  # serialisation of threads does not stretch them past their timeouts.
  for n in smoke convert object error call module release badinput buffer dlpack; do
    [ -f "$ROOT/spec/${n}_spec.lua" ] && SPECS+=("$ROOT/spec/${n}_spec.lua")
  done
else
  for s in "$ROOT"/spec/*_spec.lua; do SPECS+=("$s"); done
fi
[ ${#SPECS[@]} -gt 0 ] || die "no specs to run"

# --- environment -------------------------------------------------------------
REPORTS="$BUILD/reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;;"
export LUA_CPATH="$BUILD/?.so;;"
export PYASYNC_BUILD="$BUILD" PYASYNC_SOURCE="$ROOT" PYASYNC_MODE=host
# The shared servers (spec/servers.lua) are the main build's, not this tree's.
export PYASYNC_FIXTURES="${PYASYNC_FIXTURES:-$ROOT/build/fixtures}"
# Lets a spec skip what a checker distorts (RSS under TSan's shadow memory).
export PYASYNC_SANITIZER="$MODE"

# Specs start child processes; some run stock lua5.4 loading the module.  A
# sanitized module needs its runtime loaded first: a lua5.4 earlier on PATH
# preloads it (only there: shells and Python children stay uninstrumented).
wrap_lua() {
  local lib="$1"
  mkdir -p "$BUILD/sanbin"
  printf '#!/bin/sh\nLD_PRELOAD=%s${LD_PRELOAD:+:$LD_PRELOAD} exec /usr/bin/lua5.4 "$@"\n' \
    "$lib" >"$BUILD/sanbin/lua5.4"
  chmod +x "$BUILD/sanbin/lua5.4"
  export PATH="$BUILD/sanbin:$PATH"
}

# A report from any process (the spec runner or a child) lands in
# $REPORTS/<kind>.<pid>: the run fails if that directory is not empty.
RUNNER=()
case "$MODE" in
  asan)
    CCOMP="$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
    case "$("$CCOMP" --version | head -1)" in
      *clang*) wrap_lua "$("$CCOMP" -print-file-name=libclang_rt.asan-x86_64.so)" ;;
      *) wrap_lua "$("$CCOMP" -print-file-name=libasan.so)" ;;
    esac
    # Python's own small-object allocator carves objects out of arenas, where
    # ASan cannot see their ends: with the system allocator it sees each one.
    export PYTHONMALLOC=malloc
    export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:exitcode=86:detect_leaks=1:log_path=$REPORTS/asan:suppressions=$SUPP/asan.supp"
    export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan:suppressions=$SUPP/ubsan.supp"
    ;;
  tsan)
    CCOMP="$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
    case "$("$CCOMP" --version | head -1)" in
      *clang*) wrap_lua "$("$CCOMP" -print-file-name=libclang_rt.tsan-x86_64.so)" ;;
      *) wrap_lua "$("$CCOMP" -print-file-name=libtsan.so)" ;;
    esac
    export TSAN_OPTIONS="halt_on_error=1:exitcode=86:second_deadlock_stack=1:history_size=4:log_path=$REPORTS/tsan:suppressions=$SUPP/tsan.supp"
    # TSan's shadow layout does not fit the address space that high ASLR
    # entropy (vm.mmap_rnd_bits > 28 on newer kernels) hands out; without
    # randomization every mapping lands where TSan expects it.
    if setarch "$(uname -m)" -R true 2>/dev/null; then RUNNER=(setarch "$(uname -m)" -R)
    else echo "== setarch -R is not permitted here: running with ASLR on"; fi
    ;;
  valgrind)
    # CPython's own allocator (pymalloc) hands out memory valgrind cannot
    # see into; with the system allocator every object is tracked.
    export PYTHONMALLOC=malloc
    RUNNER=(valgrind --tool=memcheck --error-exitcode=99 --errors-for-leak-kinds=none
            --leak-check=no --track-origins=no --num-callers=30
            --suppressions="$SUPP/valgrind.supp" --log-file="$REPORTS/valgrind.%p")
    ;;
esac

if [ "${SAN_KEEP_GOING:-0}" = 1 ]; then
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:halt_on_error=0"
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:halt_on_error=0"
  TSAN_OPTIONS="${TSAN_OPTIONS:-}:halt_on_error=0"
fi

# Tests whose assertion measures the checker rather than pyasync are left
# out by name (busted --filter-out, Lua patterns): resident-memory checks
# (ASan's quarantine keeps freed memory resident, TSan's shadow is 4x what
# is touched, memcheck shadows everything) and, under TSan, SIGINT stopping
# a pure-Lua loop (TSan defers an asynchronous signal until the thread next
# enters an intercepted libc call, which that loop never does).
FILTERS=("RSS")
[ "$MODE" = tsan ] && FILTERS+=("pure%-Lua busy loop")
BUSTED_ARGS=(-o TAP)
for f in "${FILTERS[@]}"; do BUSTED_ARGS+=("--filter-out=$f"); done

# --- run ---------------------------------------------------------------------
fail=0
start=$SECONDS
for spec in "${SPECS[@]}"; do
  name="$(basename "$spec" _spec.lua)"
  [ -f "$spec" ] || { echo "MISSING $name ($spec)"; fail=1; continue; }
  log="$REPORTS/$name.out"
  t0=$SECONDS
  (cd "$ROOT" && "${RUNNER[@]}" "$BUILD/pyasync" /usr/bin/busted "${BUSTED_ARGS[@]}" "$spec") >"$log" 2>&1
  rc=$?
  # Reports written by this spec's processes (valgrind writes a log per
  # process whether or not it found anything: keep the ones with errors).
  found=()
  for r in "$REPORTS"/asan.* "$REPORTS"/ubsan.* "$REPORTS"/tsan.* "$REPORTS"/valgrind.*; do
    [ -e "$r" ] || continue
    if [ "$MODE" = valgrind ] && ! grep -q "ERROR SUMMARY: [1-9]" "$r"; then
      rm -f "$r"
      continue
    else
      found+=("$r")
    fi
  done
  status=PASS
  [ $rc -eq 0 ] || status="FAIL(exit $rc)"
  [ ${#found[@]} -eq 0 ] || status="REPORT"
  printf '%-8s %-14s %4ds  %s\n' "$MODE" "$name" $((SECONDS - t0)) "$status"
  if [ "$status" != PASS ]; then
    fail=1
    grep -E "^not ok|^# " "$log" | head -40 | sed 's/^/    /'
    [ $rc -eq 0 ] || tail -25 "$log" | sed 's/^/    | /'
    for r in "${found[@]}"; do
      echo "    --- $r"
      head -80 "$r" | sed 's/^/    | /'
      mv "$r" "$REPORTS/$name.$(basename "$r")"
    done
  fi
done
echo "== $MODE: left out tests matching: ${FILTERS[*]}"
echo "== $MODE: ${#SPECS[@]} specs in $((SECONDS - start))s: $([ $fail -eq 0 ] && echo "all passed, no reports" || echo FAILED)"
exit $fail
