-- pyasync/gather.lua - py.gather and py.taskgroup (API.md section 5):
-- awaitables run concurrently, results in order; a task group waits for
-- all and lets the first failure cancel the rest (asyncio.TaskGroup).

local core = require "pyasync.core"
local S = require "pyasync.sched"
local A = require "pyasync.async"

local M = {}
local pack = table.pack
local Task, waiters, unretrieved = S.Task, S.waiters, S.unretrieved

local function as_task(aw)
  if getmetatable(aw) == Task then return aw end
  return A.start(aw)
end

-- gather of Python awaitables only: one batch submission, one waiter for
-- all, completion ids mapped back to positions (no Task per item).
local function gather_raw(list, n, opts)
  local base = core.submit_batch(list, n)
  local last = base + n - 1
  local results = {n = n}
  local w = S.new_waiter(nil)
  local left = n
  local rex = opts and opts.return_exceptions
  local cerr  -- the gather's own cancellation: it ends once all have
  local g = {__waiter = true}
  local function cancel_rest()
    for id = base, last do
      if waiters[id] == g then core.cancel(id) end
    end
  end
  g.on_complete = function(_, ok, value, id)
    left = left - 1
    if not w.done and not cerr then
      if ok or rex then
        results[id - base + 1] = value
      else  -- the first error: cancel the rest, do not wait for them
        for j = base, last do
          if waiters[j] == g then waiters[j] = nil; core.cancel(j) end
        end
        S.wake(w, false, value)
        return
      end
    end
    if left == 0 and not w.done then
      if cerr then S.wake(w, false, cerr) else S.wake(w, true, results) end
    end
  end
  for id = base, last do waiters[id] = g end
  w.on_cancel = function(_, err)
    cerr = err
    cancel_rest()
  end
  local ok, v = S.wait(w, opts)
  if not ok then error(v, 0) end
  return v
end

-- gather of Tasks (and awaitables made into Tasks): one on_done each.
local function gather_tasks(list, n, opts)
  local ts = {}
  for i = 1, n do ts[i] = as_task(list[i]) end
  local results = {n = n}
  local w = S.new_waiter(nil)
  local left = n
  local rex = opts and opts.return_exceptions
  local cerr  -- the gather's own cancellation: it ends once all have
  local function one_done(i, t)
    if w.done then return end
    if cerr then
      left = left - 1
      if left == 0 then S.wake(w, false, cerr) end
      return
    end
    if t.results then results[i] = t.results[1]
    elseif rex then results[i] = t.error
    else
      for j = 1, n do if ts[j].state == "pending" then ts[j]:cancel() end end
      S.wake(w, false, t.error)
      return
    end
    left = left - 1
    if left == 0 then S.wake(w, true, results) end
  end
  for i = 1, n do
    ts[i].awaited = true
    unretrieved[ts[i]] = nil
    S.on_done(ts[i], function(t) unretrieved[t] = nil; one_done(i, t) end)
  end
  if left == 0 and not w.done then S.wake(w, true, results) end
  w.on_cancel = function(_, err)
    cerr = err
    for j = 1, n do ts[j]:cancel() end
    if left == 0 then S.wake(w, false, err) end
  end
  local ok, v = S.wait(w, opts)
  if not ok then error(v, 0) end
  return v
end

--- py.gather(aw1, aw2, ...) or py.gather({...} [, opts]) -> results table.
function M.gather(...)
  local list, opts
  local first = ...
  if type(first) == "table" and getmetatable(first) == nil then
    list, opts = first, select(2, ...)
  else
    list = pack(...)
  end
  local n = list.n or #list
  local tok = opts and opts.cancel
  if tok and tok.cancelled then  -- start nothing, as py.await does
    for i = 1, n do
      local aw = list[i]
      if type(aw) == "userdata" and core.type(aw) == "coroutine" then aw:close() end
    end
    error(S.cancelled_error("cancelled before the gather"), 2)
  end
  local raw = n > 0
  for i = 1, n do
    if type(list[i]) ~= "userdata" then raw = false break end
  end
  if raw then return gather_raw(list, n, opts) end
  return gather_tasks(list, n, opts)
end

local TaskGroup = {}
TaskGroup.__index = TaskGroup
M.TaskGroup = TaskGroup

function TaskGroup:start(aw)
  if self.closed then error("task group is finished", 2) end
  local t = as_task(aw)
  t.awaited = true
  self.tasks[t] = true  -- the running ones, for cancelling
  self.left = self.left + 1
  S.on_done(t, function(d)
    unretrieved[d] = nil
    self.tasks[d] = nil
    self.left = self.left - 1
    if d.state == "failed" and not self.error then
      self.error = d.error
      for o in pairs(self.tasks) do o:cancel() end
    end
    if self.left == 0 and self.w then S.wake(self.w, true) end
  end)
  return t
end

function TaskGroup:spawn(fn, ...)
  return self:start(A.spawn(fn, ...))
end

--- py.taskgroup(fn): fn(tg); waits for every tg:start(aw); the first
--- failure cancels the rest and is raised.
function M.taskgroup(fn)
  S.check_fn(fn, "taskgroup")
  local tg = setmetatable({tasks = {}, left = 0}, TaskGroup)
  local ok, err = pcall(fn, tg)
  if not ok and not tg.error then
    tg.error = err
    for t in pairs(tg.tasks) do t:cancel() end
  end
  local cerr = S.wait_all(tg)
  tg.closed = true
  -- a child's failure wins over the cancellation it caused
  local e = tg.error or cerr
  if e then error(e, 0) end
end

return M
