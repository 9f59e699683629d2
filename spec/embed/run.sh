#!/bin/sh
# spec/embed/run.sh - the embed:* tests (cmake/embed_tests.cmake): C hosts
# built against the INSTALLED pyasync with cc and pkg-config, as a user
# builds them, and run.
#   run.sh install CMAKE BUILD PREFIX      cmake --install BUILD into a fresh PREFIX
#   run.sh host PCDIR OUT SRC.c [ARGS...]  build SRC.c as OUT and run it there;
#                                          EMBED_EXPECT (an ERE), if set, must
#                                          match its output
set -eu
mode=$1
shift
case $mode in
install)
  cmake=$1 build=$2 prefix=$3
  rm -rf "$prefix"
  exec "$cmake" --install "$build" --prefix "$prefix"
  ;;
host)
  pcdir=$1 out=$2 src=$3
  shift 3
  PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export PKG_CONFIG_PATH
  # only what pkg-config gives: libpython comes with libpyasync.so
  flags=$(pkg-config --cflags --libs pyasync lua5.4)
  libdir=$(pkg-config --variable=libdir pyasync)
  mkdir -p "$(dirname "$out")"
  echo "${CC:-cc} -o $out $src $flags"
  # shellcheck disable=SC2086
  ${CC:-cc} -Wall -Wextra -Werror -o "$out" "$src" $flags -Wl,-rpath,"$libdir"
  if [ -z "${EMBED_EXPECT:-}" ]; then
    exec "$out" "$@"
  fi
  log=$out.log
  status=0
  "$out" "$@" >"$log" 2>&1 || status=$?
  cat "$log"
  [ "$status" -eq 0 ] || { echo "run.sh: $out exited with $status"; exit 1; }
  grep -Eq "$EMBED_EXPECT" "$log" || { echo "run.sh: output does not match /$EMBED_EXPECT/"; exit 1; }
  ;;
*)
  echo "usage: run.sh install CMAKE BUILD PREFIX | run.sh host PCDIR OUT SRC.c [ARGS...]" >&2
  exit 2
  ;;
esac
