-- pyasync/queue.lua - the Queue bridge (API.md section 6): py.Queue is an
-- asyncio.Queue on the loop thread (helper.Queue, with close()); Lua puts
-- and gets through the loop, so Python coroutines and Lua tasks can share
-- it, and passed to Python it is the asyncio.Queue itself.

local core = require "pyasync.core"
local S = require "pyasync.sched"

local M = {}
local helper = core._helper
local await_call = S.await_call

local Queue = {__pyobject = true}
local q_get_or_end, try_put, try_get = helper._q_get_or_end, helper._q_try_put, core.q_try_get
Queue.__index = Queue
M._Queue = Queue

--- py.Queue([maxsize]) -> an asyncio.Queue on the loop thread.
function M.Queue(maxsize)
  if maxsize ~= nil and math.type(maxsize) ~= "integer" then
    error("bad argument #1 to 'Queue' (integer expected, got " .. type(maxsize) .. ")", 2)
  end
  return setmetatable({_obj = helper.Queue(maxsize or 0)}, Queue)
end

-- A cancelled token ends a wait before it starts, as py.await's does.
local function check_token(opts)
  local tok = opts and opts.cancel
  if tok and tok.cancelled then error(S.cancelled_error("cancelled before the wait"), 3) end
end

-- Both start with a synchronous put_nowait / get_nowait on the main thread
-- (the queue takes the item at once and its waiters wake, as if a coroutine
-- had made the call: loop affinity); only a full (empty) queue costs a wait
-- on the loop.
function Queue:put(v, opts)
  check_token(opts)
  if try_put(self._obj, v) then return end
  local ok, e = await_call(opts, self._obj.put, v)
  if not ok then error(e, 0) end
end

-- One item, or nil once the queue is closed and drained.
function Queue:get(opts)
  check_token(opts)
  local v = try_get(self._obj)
  if v ~= false then return v end
  local ok, b = await_call(opts, q_get_or_end, self._obj)
  if not ok then error(b, 0) end
  return b[1]
end

-- Synchronous, on the calling thread (loop affinity makes the wake-ups
-- safe): they work wherever a Python call does, a Lua function the loop
-- thread calls included.
function Queue:put_nowait(v)
  self._obj:put_nowait(v)
end

function Queue:get_nowait()
  local v = self._obj:get_nowait()
  if v == nil then return core.None end
  return v
end

function Queue:qsize() return self._obj:qsize() end
function Queue:empty() return self._obj:empty() end
function Queue:full() return self._obj:full() end
function Queue:closed() return self._obj.closed end

function Queue:close()
  self._obj:close()
end

--- q:items([token]): generic for until the queue is closed and drained or
--- the token is cancelled.
function Queue:items(token)
  local q = self._obj
  return function()
    if token and token.cancelled then return nil end
    local v = try_get(q)
    if v ~= false then return v end
    local ok, b = await_call(token and {cancel = token}, q_get_or_end, q)
    if not ok then
      if token and token.cancelled and core.iserror(b, "CancelledError") then return nil end
      error(b, 0)
    end
    return b[1]
  end
end

function Queue:__tostring()
  return "pyasync.Queue(" .. tostring(self._obj:qsize()) .. " items)"
end

return M
