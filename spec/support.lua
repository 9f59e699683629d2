-- support.lua - shared helpers for the specs (luv's tests/tap.lua in spirit):
-- run a script in a fresh host process, and check that nothing was left
-- running or leaked after a spec.
local py = require "pyasync"

local M = {}

M.mode = os.getenv("PYASYNC_MODE") or "lua"
M.build = os.getenv("PYASYNC_BUILD") or "build"
M.source = os.getenv("PYASYNC_SOURCE") or "."

local function readall(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

M.readall = readall

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shquote = shquote

-- Runs a Lua script in a new process.  how = "host" (build/pyasync) or
-- "lua" (stock lua5.4 with the module); returns stdout, stderr, exit code.
function M.run_script(src, how, args, env)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  local out, err = os.tmpname(), os.tmpname()
  local cmd
  if (how or "host") == "host" then
    cmd = shquote(M.build .. "/pyasync") .. " " .. shquote(path)
  else
    cmd = "lua5.4 " .. shquote(path)
  end
  if args then cmd = cmd .. " " .. args end
  cmd = (env or "") .. " " .. cmd .. " >" .. out .. " 2>" .. err
  local _, _, code = os.execute(cmd)
  local o, e = readall(out), readall(err)
  os.remove(path); os.remove(out); os.remove(err)
  return o, e, code
end

-- The error message of a failing call (string errors and PyErrors alike).
function M.err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return type(e) == "table" and tostring(e.message or e) or tostring(e)
end

-- Polls cond() every 20 ms until it is true or `seconds` pass; returns its
-- last value.  For state that settles in the background (sockets closing,
-- tasks finishing) and has no event to wait on.
function M.settle(seconds, cond)
  local clock = py.import("time").monotonic
  local stop = clock() + seconds
  local v = cond()
  while not v and clock() < stop do
    py.sleep(0.02)
    v = cond()
  end
  return v
end

-- Nothing submitted to Python is still waiting for delivery.
function M.drained()
  py.run(function() end)
  assert(py._core.inflight() == 0, "work still in flight: " .. py._core.inflight())
  return true
end

return M
