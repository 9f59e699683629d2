#!/usr/bin/env bash
# Runs `luarocks make` from a copy of the source into a temporary tree and
# loads the installed module from it with stock lua5.4.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$src" ls-files -co --exclude-standard -z | (cd "$src" && xargs -0 cp --parents -t "$work" 2>/dev/null) || cp -r "$src"/. "$work"/
rm -rf "$work"/build* "$work"/.git
cd "$work"
luarocks --lua-version 5.4 --tree "$work/tree" make pyasync-scm-1.rockspec >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
eval "$(luarocks --lua-version 5.4 --tree "$work/tree" path)"
cd /
out=$(lua5.4 -e 'local py = require "pyasync"
print(py.eval("6*7"), package.searchpath("pyasync.core", package.cpath) and "" or "")
py.exec("import asyncio\nasync def f(): await asyncio.sleep(0); return \"ok\"")
print(py.await(py.main.f()))')
echo "$out"
[ "$out" = "$(printf '42\t\nok')" ] || { echo "unexpected output"; exit 1; }
[ -x "$work/tree/bin/pyasync" ]
echo "luarocks make: installed and loaded from $work/tree"
