#!/usr/bin/env bash
# Installs the Debian 12 packages pyasync builds, tests and runs with.
# Idempotent: apt-get runs only when something is missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libuv1-dev
      python3-dev libdlpack-dev lua-busted luarocks lua-luv lua-luv-dev
      python3-numpy python3-uvloop python3-torch libreadline-dev
      clang libclang-rt-14-dev valgrind
      # the specs' real servers (tools/fixtures, spec/servers.lua,
      # spec/pyservers.py), their Python clients, and lint:luacheck
      postgresql redis-server python3-asyncpg python3-redis python3-aiohttp
      python3-httpx python3-websockets python3-aiosqlite python3-distributed
      python3-starlette python3-uvicorn lua-check tmux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
