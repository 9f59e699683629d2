-- pyasync/context.lua - context managers (API.md section 6): py.with is
-- Python's `with` / `async with` as a call, py.enter the same for a Lua
-- to-be-closed variable.  A sync manager is entered and exited on the main
-- thread; an async one by a task on the loop (helper._AsyncWith) that runs
-- it from __aenter__ to __aexit__ around the Lua body, so the manager sees
-- one task throughout and its cancellation (asyncio.timeout) reaches the
-- Lua body.  Lua errors reach the exit as their Python exceptions.

local core = require "pyasync.core"
local S = require "pyasync.sched"
local C = require "pyasync.callback"

local M = {}
local pack, unpack = table.pack, table.unpack
local helper = core._helper

local function check(cm, name)
  if type(cm) ~= "userdata" then
    error("bad argument #1 to '" .. name .. "' (context manager expected, got " ..
          type(cm) .. ")", 3)
  end
  local why = S.cannot_wait()
  if why then error(why, 3) end
end

-- The body's cancellation, asked for by an async manager (its task was
-- cancelled): the body's task, or the wait the main chunk is in.
local function canceller(scope)
  return function()
    if scope.done then return end
    scope.cancelled = true
    local t = scope.task
    if not t then S.cancel_blocking(S.cancelled_error("cancelled by the context manager"))
    elseif t.state == "pending" then t:cancel() end
  end
end

-- A cancel that the body never took (it ended first) is dropped.
local function end_scope(scope)
  scope.done = true
  if not scope.cancelled then return end
  local t = scope.task
  if t then t.cancel_pending, t.cancel_msg = nil, nil
  else S.cancel_blocking(nil, true) end
end

-- Enters cm: returns the manager's handle (helper._SyncWith/_AsyncWith) and
-- the scope its body runs in.
local function enter(cm)
  if not helper._is_async_cm(cm) then return helper._SyncWith(cm), nil end
  core.loop()  -- started, if it was not
  local scope = {task = S.current()}
  local w = helper._AsyncWith(cm, canceller(scope))
  local ok, e = S.await_raw(w.entered)
  if not ok then
    -- cancelled while __aenter__ ran: that is cancelled too; its unwinding
    -- ends before the cancellation goes on (the cancel was delivered here)
    if core.iserror(e, "CancelledError") then S.await_raw(w:unwound()) end
    error(e, 0)
  end
  return w, scope
end

-- The exit's outcome ("ok", "suppressed", "propagate") for Python's
-- exception exc (nil after a normal end); raises the exit's own error.
local function exit(w, scope, exc)
  if not scope then return w:exit(exc) end
  end_scope(scope)
  if not S.can_wait() then  -- a dying task's close: no one can wait
    w:finish_nowait(exc)
    return "propagate"
  end
  w:finish(exc)
  return S.finish_wait(S.await_raw(w.task))
end

local function traceback_of(e)
  local ok, s = pcall(tostring, e)
  if not ok or type(s) ~= "string" then s = type(e) end
  return debug.traceback(s, 2)
end

--- py.with(cm, fn, ...) -> fn's results: fn(value, ...) inside the manager.
function M.with(cm, fn, ...)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #2 to 'with' (function expected, got " .. type(fn) .. ")", 2)
  end
  check(cm, "with")
  local w, scope = enter(cm)
  local tb
  local r = pack(xpcall(fn, function(e) tb = traceback_of(e); return e end,
                        w.value, ...))
  if r[1] then
    exit(w, scope, nil)
    return unpack(r, 2, r.n)
  end
  local err = r[2]
  if exit(w, scope, C._exception_of(err, tb)) == "suppressed" then return end
  error(err, 0)
end

--- py.enter(cm) -> closer, value: for `local x <close> = py.enter(cm)`.
function M.enter(cm)
  check(cm, "enter")
  local w, scope = enter(cm)
  local function close(_, err)
    local exc = err ~= nil and C._exception_of(err) or nil
    exit(w, scope, exc)  -- Lua cannot swallow err here: nothing to suppress
  end
  return core.closer(w, "value", close), w.value
end

return M
