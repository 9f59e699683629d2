#!/bin/sh
_=[[
# pyasync-stubs: a shell script and a Lua chunk in one file.  sh runs the
# pyasync host binary beside this file (else the one on PATH) on the file
# itself, so the stubs come from the interpreter and sys.path a pyasync
# script sees; Lua skips this first line and takes this block as a string.
here=$(dirname "$(readlink -f "$0" 2>/dev/null || echo "$0")")
bin="$here/pyasync"
[ -x "$bin" ] || bin=pyasync
exec "$bin" -E "$0" "$@"
]]
_ = nil

-- The Lua side: loads the generator (tools/stubs/pyasync_stubs.py, inlined
-- below by cmake/stubs_launcher.cmake; read from beside this file when it
-- runs from the source tree) into a fresh module and calls its main().
local py = require "pyasync"

local SOURCE = nil -- @PYASYNC_STUBS_SOURCE@

if not SOURCE then
  local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
  local f = assert(io.open(dir .. "/pyasync_stubs.py", "rb"))
  SOURCE = f:read("a")
  f:close()
end

local gen = py.import("types").ModuleType("pyasync_stubs")
py.builtins.exec(py.builtins.compile(SOURCE, "pyasync_stubs.py", "exec"), gen.__dict__)
local argv = {}
for i = 1, #arg do argv[i] = arg[i] end
os.exit(gen.main(py.list(argv)), true)
