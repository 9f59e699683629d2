-- pyasync/callback.lua - Python awaiting Lua (API.md section 6):
-- py.async_fn makes a Lua function a Python async callable whose awaits
-- run the function as a Lua task and resolve to its first result.

local core = require "pyasync.core"
local S = require "pyasync.sched"
local A = require "pyasync.async"

local M = {}
local unpack = table.unpack
local helper = core._helper

-- The Python exception for a Lua error value (a PyError gives its own);
-- tb is the traceback the task noted where the error was raised.
local function exception_of(err, tb)
  if core.iserror(err) then return err.exception end
  local ok, msg = pcall(tostring, err)
  if not ok or type(msg) ~= "string" then msg = type(err) end
  if not utf8.len(msg) then msg = msg:gsub("[\128-\255]", "?") end  -- a str, not bytes
  tb = tb or debug.traceback("", 2)
  if tb:sub(1, #msg + 1) == msg .. "\n" then tb = tb:sub(#msg + 2) end
  return core.LuaError(msg, tb, core.ref(err))
end
M._exception_of = exception_of

-- The callable that settles the Python future of token with the outcome of
-- task d.  A result Python cannot hold (a cyclic table, a coroutine) fails
-- the future with the conversion error instead of failing the scheduler.
local function resolver(token, d)
  if d.results then
    local ok, cb = pcall(helper._resolver, token, true, d.results[1])
    if ok then return cb end
    return helper._resolver(token, false, exception_of(cb))
  end
  return helper._resolver(token, false, exception_of(d.error, d.traceback))
end

--- py.async_fn(fn) -> Python async callable running fn as a Lua task.
function M.async_fn(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'async_fn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local running = {}
  local function spawn(token, args, kwargs)
    local n, a = #args, {}
    for i = 1, n do a[i] = args[i - 1] end
    if #kwargs > 0 then n = n + 1; a[n] = core.totable(kwargs) end
    local t = A.spawn(fn, unpack(a, 1, n))
    t.awaited = true
    running[token] = t
    S.on_done(t, function(d)
      running[token] = nil
      S.unretrieved[d] = nil  -- its error goes to the Python awaiter
      local ok, cb = pcall(resolver, token, d)
      if not ok then  -- not even the error converts: say so
        cb = helper._resolver(token, false, core.LuaError(
          "pyasync: cannot hand the Lua task's outcome to Python: " .. tostring(cb)))
      end
      -- shutting down: nobody is left to resolve
      pcall(core.call_soon, cb)
    end)
  end
  local function cancel(token)
    local t = running[token]
    if t then t:cancel() end
  end
  return helper._async_fn(spawn, cancel)
end

return M
