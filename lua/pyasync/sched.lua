-- pyasync/sched.lua - the Lua task scheduler (API.md section 5): waiters,
-- the ready queue, the task life cycle and the Task class, cancellation
-- tokens and waits with timeouts.  Tasks are Lua coroutines; a task that
-- awaits yields a "waiter", and completions from the C core (Python
-- results, timers) wake it.  Outside a task, a wait drives the same loop
-- until its waiter is woken.  The other parts of pyasync build on the
-- internal table this module returns.

local core = require "pyasync.core"

local S = {}

local co_running, co_yield, co_resume = coroutine.running, coroutine.yield, coroutine.resume
local co_status, co_isyieldable = coroutine.status, coroutine.isyieldable
local pack, unpack = table.pack, table.unpack
local iserror = core.iserror

---------------------------------------------------------------------------
-- Waiters: one pending wait of one task (or of a blocking caller).
---------------------------------------------------------------------------

local waiters = {}      -- id -> waiter, for ids the C core will complete
local ready = {}        -- tasks to resume, in order
local ready_head, ready_tail = 1, 0

local function push_ready(t)
  ready_tail = ready_tail + 1
  ready[ready_tail] = t
end
local tasks_of = setmetatable({}, {__mode = "k"})  -- coroutine -> Task
local live = 0          -- Lua tasks not yet finished
local current = nil     -- the Task being resumed
local unretrieved = {}  -- failed tasks nobody awaited
local Task = {}
Task.__index = Task

S.waiters, S.tasks_of, S.unretrieved, S.Task = waiters, tasks_of, unretrieved, Task
function S.current() return current end
function S.live() return live end
function S.has_ready() return ready_head <= ready_tail end

local function cancelled_error(msg)
  return core.make_error("CancelledError", msg or "")
end
S.cancelled_error = cancelled_error

-- Wakes w with (ok, value) once; later wakes are ignored.
local function wake(w, ok, value)
  if w.done then return end
  w.done, w.ok, w.value = true, ok, value
  if w.cleanup then w.cleanup(w) end
  local t = w.task
  if t then push_ready(t) end
end
S.wake = wake

-- Cancels a pending wait: a Python await is cancelled there and completes
-- with CancelledError; other waits end now.
local function cancel_wait(w, err)
  if w.done then return end
  if w.on_cancel then
    w.on_cancel(w, err or cancelled_error())
  elseif w.id and waiters[w.id] == w then
    w.cancelling = true
    core.cancel(w.id)
  else
    wake(w, false, err or cancelled_error())
  end
end
S.cancel_wait = cancel_wait

local function new_waiter(id)
  local w = {__waiter = true, id = id}
  if id then waiters[id] = w end
  return w
end
S.new_waiter = new_waiter

-- One completion buffer per nesting level of step(): a wait can nest (a
-- blocking py.await inside a Lua function Python calls on the main thread).
local poll_bufs, poll_depth = {}, 0
local run_ready
local blocking, blocking_cancel = {}, nil  -- waits outside tasks, innermost last

-- Runs ready tasks, then waits for and dispatches one batch of events.
-- Returns false when nothing is left that could ever wake anyone.
local function step(block)
  if ready_head <= ready_tail then
    run_ready()
    block = false
  end
  poll_depth = poll_depth + 1
  local poll_buf = poll_bufs[poll_depth]
  if not poll_buf then poll_buf = {}; poll_bufs[poll_depth] = poll_buf end
  local okp, n = pcall(core.poll, poll_buf, block)
  poll_depth = poll_depth - 1
  if not okp then error(n, 0) end
  if n < 0 then return false end
  for i = 1, n, 3 do
    local id, ok, value = poll_buf[i], poll_buf[i + 1], poll_buf[i + 2]
    poll_buf[i], poll_buf[i + 1], poll_buf[i + 2] = nil, nil, nil
    if id == 0 then
      S.interrupt()
    else
      local w = waiters[id]
      if w then
        waiters[id] = nil
        if w.on_complete then w.on_complete(w, ok, value, id) else wake(w, ok, value) end
      end
    end
  end
  return true
end
S.step = step

function S.nothing_left()
  error("pyasync: deadlock: waiting for something nothing can complete", 0)
end

-- Why the running code cannot wait here, or nil: a task yields, which Lua
-- refuses inside a C call, and a Lua function that the loop thread calls
-- synchronously must not drive the loop that is waiting for it.
local function cannot_wait()
  local co, ismain = co_running()
  local t = not ismain and tasks_of[co]
  if t and t.co == co then
    if not co_isyieldable() then
      return "pyasync: cannot await here: Lua cannot yield (metamethod, __gc or C call)"
    end
  elseif core.in_remote_call() then
    return "pyasync: cannot await inside a Lua function that Python calls " ..
           "synchronously from the loop thread or another thread (use py.async_fn)"
  end
end
S.cannot_wait = cannot_wait

-- Can this coroutine wait right here?
function S.can_wait()
  local co, ismain = co_running()
  local t = not ismain and tasks_of[co]
  if t and t.co == co then return co_isyieldable() end
  return not core.in_remote_call()
end

-- Suspends until w is woken: yields inside a task, drives the loop elsewhere.
local function suspend(w)
  local co, ismain = co_running()
  local t = not ismain and tasks_of[co]
  if t and t.co == co then
    if not co_isyieldable() then
      if w.id then core.cancel(w.id) end
      error(cannot_wait(), 3)
    end
    -- a cancel() not yet delivered is delivered by this wait
    if t.cancel_pending then cancel_wait(w, cancelled_error(t.cancel_msg)) end
    if not w.done then
      w.task = t
      t.waiting = w
      co_yield(w)
      t.waiting = nil
    end
    -- delivered once a wait fails; a wait that completed anyway (a coroutine
    -- that finished before the cancel reached it) keeps its value and
    -- leaves the cancel to the next wait, or to the task's end
    if t.cancel_pending and not w.ok then t.cancel_pending = nil end
  else
    if core.in_remote_call() then
      if w.id then core.cancel(w.id) end
      error(cannot_wait(), 3)
    end
    local n = #blocking + 1
    blocking[n] = w
    if blocking_cancel then  -- asked for while no wait was in progress
      local e = blocking_cancel
      blocking_cancel = nil
      cancel_wait(w, e)
    end
    while not w.done do
      if not step(true) and not w.done then blocking[n] = nil; S.nothing_left() end
    end
    blocking[n] = nil
  end
  return w.ok, w.value
end
S.suspend = suspend

-- Cancels the innermost wait outside any task (the main chunk of stock
-- lua5.4 driving the loop), or the next one if none is in progress; forget
-- drops a cancel asked for that no wait took (the scope it was for ended).
function S.cancel_blocking(err, forget)
  if forget then blocking_cancel = nil return end
  local w = blocking[#blocking]
  if w then cancel_wait(w, err) else blocking_cancel = err end
end

-- Error values go on unchanged (level 0): a Lua error that crossed Python
-- or a task is re-raised as it was raised.
function S.finish_wait(ok, value)
  if ok then return value end
  error(value, 0)
end

---------------------------------------------------------------------------
-- The task life cycle
---------------------------------------------------------------------------

local function report(t)
  local msg = t.traceback or tostring(t.error)
  io.stderr:write("pyasync: task failed and nobody awaited it:\n", msg, "\n")
end

function S.report_unretrieved()
  for t in pairs(unretrieved) do
    unretrieved[t] = nil
    report(t)
  end
end

local function msgh(e)
  local t = tasks_of[co_running()]
  if t then
    local s = type(e) == "string" and e or tostring(e)
    t.traceback = debug.traceback(s, 2)
  end
  return e
end

-- A finished task's outcome to its awaiter (or to the report of failures
-- nobody awaited), then its on_done functions.
local function conclude(t, ok)
  local w = t.waiter
  if w then
    t.waiter = nil
    if ok then wake(w, true, t.results) else wake(w, false, t.error) end
  elseif not ok and t.state == "failed" and not t.awaited then
    unretrieved[t] = true  -- reported at exit unless t:result() takes it
  end
  if t.on_done then
    local fns = t.on_done
    t.on_done = nil
    for i = 1, #fns do fns[i](t) end
  end
end

local function settle(t, ok, res)
  if ok and t.cancel_pending then  -- cancel() said true: it ends cancelled
    ok, res = false, pack(cancelled_error(t.cancel_msg))
  end
  t.state = ok and "done" or
            ((iserror(res[1], "CancelledError")) and "cancelled" or "failed")
  if ok then t.results = res else t.error = res[1] end
  live = live - 1
  conclude(t, ok)
  local g = t.scope
  if g then
    g.tasks[t] = nil
    g.left = g.left - 1
    if g.left == 0 and g.w then wake(g.w, true) end
  end
end

local function body(fn, ...)
  return xpcall(fn, msgh, ...)
end

local function resume(t)
  local w = t.waiting
  local prev = current
  current = t
  local r
  if w then
    r = pack(co_resume(t.co, w))
  elseif t.args then  -- its first run
    local args = t.args
    t.fn, t.args = nil, nil
    r = pack(co_resume(t.co, t.entry, unpack(args, 1, args.n)))
  else                -- after a plain coroutine.yield()
    r = pack(co_resume(t.co))
  end
  current = prev
  if co_status(t.co) == "dead" then
    if r[1] then  -- our body returned: xpcall's ok, then results or error
      settle(t, r[2], pack(select(3, unpack(r, 1, r.n))))
    else          -- died outside xpcall (should not happen); close it
      coroutine.close(t.co)
      settle(t, false, pack(r[2]))
    end
  elseif r[2] == nil or type(r[2]) ~= "table" or not r[2].__waiter then
    push_ready(t)  -- a plain coroutine.yield(): run again later
  end
end

function run_ready()
  while ready_head <= ready_tail do
    local t = ready[ready_head]
    ready[ready_head] = nil
    ready_head = ready_head + 1
    if t.state == "pending" then
      local w = t.waiting
      if t.cancel_pending and w and not w.done then
        cancel_wait(w, cancelled_error(t.cancel_msg))
      else
        t.started = true
        resume(t)
      end
    end
  end
  ready_head, ready_tail = 1, 0
end

-- A task belongs to scope g (a py.run inside a task), or to its spawner's.
function S.lua_task(fn, args, g)
  local t = setmetatable({kind = "lua", state = "pending", fn = fn, args = args,
                          entry = fn}, Task)
  t.co = coroutine.create(body)
  tasks_of[t.co] = t
  live = live + 1
  g = g or (current and current.scope)
  if g then
    t.scope = g
    g.tasks[t] = true
    g.left = g.left + 1
  end
  push_ready(t)
  return t
end

function S.check_fn(fn, name)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to '" .. name .. "' (function expected, got " .. type(fn) .. ")", 3)
  end
end

-- Registers fn(t) to run when t finishes (at once if it has).
local function on_done(t, fn)
  if t.state ~= "pending" then fn(t) return end
  local l = t.on_done or {}
  l[#l + 1] = fn
  t.on_done = l
end
S.on_done = on_done

-- A Python task's completion: the Task is its own waiter (waiters[id]).
local function finish_py_task(t, ok, value)
  t.state = ok and "done" or (iserror(value, "CancelledError") and "cancelled" or "failed")
  if ok then t.results = pack(value) else t.error = value end
  conclude(t, ok)
end

-- The Task of a Python awaitable submitted with id; it is its own waiter
-- (step() calls on_complete for it), one table per py.start.
function S.py_task(id, name)
  local t = setmetatable({kind = "python", state = "pending", id = id, name = name,
                          on_complete = finish_py_task}, Task)
  waiters[id] = t
  return t
end

---------------------------------------------------------------------------
-- Task
---------------------------------------------------------------------------

function Task:done() return self.state ~= "pending" end
function Task:cancelled() return self.state == "cancelled" end

function Task:result()
  if self.state == "pending" then error("task is not done", 2) end
  unretrieved[self] = nil
  if self.results then return unpack(self.results, 1, self.results.n) end
  error(self.error, 0)
end

--- t:cancel() -> boolean: false if already finished.
function Task:cancel(msg)
  if self.state ~= "pending" then return false end
  if self.kind == "python" then
    core.cancel(self.id)
  elseif not self.started then  -- never ran: done now
    tasks_of[self.co] = nil
    coroutine.close(self.co)
    settle(self, false, pack(cancelled_error(msg)))
  else
    -- the pending wait delivers it as CancelledError, or the next wait if
    -- that one completes anyway; a task that ends first ends cancelled
    self.cancel_pending, self.cancel_msg = true, msg
    local w = self.waiting
    if w and not w.done then cancel_wait(w, cancelled_error(msg)) end
  end
  return true
end

function S.await_task(t, opts)
  if t.awaited then error("Task already awaited (a Task can be awaited once; use t:result())", 3) end
  t.awaited = true
  unretrieved[t] = nil
  if t.state ~= "pending" then
    if t.results then return unpack(t.results, 1, t.results.n) end
    error(t.error, 0)
  end
  local w = new_waiter(nil)
  t.waiter = w
  -- cancelling the await cancels t (as asyncio does) and ends once t has
  -- finished, so its finally has run; S.wait turns a timeout's
  -- CancelledError into TimeoutError
  w.on_cancel = function() t:cancel() end
  local ok, v = S.wait(w, opts)
  if ok then return unpack(v, 1, v.n) end
  error(v, 0)
end

function Task:await(opts) return S.await_task(self, opts) end

function Task:__tostring()
  return string.format("pyasync.Task(%s, %s)", self.kind, self.state)
end

-- Waits until none of the tasks of g is left (g.w is woken then).  A
-- cancellation of the waiting task cancels them all and the wait goes on
-- until they have finished (asyncio.TaskGroup's __aexit__); returns the
-- CancelledError in that case, which the caller raises.
function S.wait_all(g)
  local err
  local function cancel_all(e)
    err = err or e
    for x in pairs(g.tasks) do x:cancel() end
  end
  while g.left > 0 do
    local w = new_waiter(nil)
    g.w = w
    w.on_cancel = function(_, e) cancel_all(e) end
    suspend(w)  -- woken once g.left is 0
  end
  g.w = nil
  if err and current then current.cancel_pending = nil end  -- delivered
  return err
end

---------------------------------------------------------------------------
-- Cancellation tokens
---------------------------------------------------------------------------

local CancelToken = {}
CancelToken.__index = CancelToken
S.CancelToken = CancelToken

function CancelToken:cancel()
  if self.cancelled then return end
  self.cancelled = true
  for w in pairs(self._waits) do cancel_wait(w) end
  self._waits = {}
end

---------------------------------------------------------------------------
-- Waits with options
---------------------------------------------------------------------------

local function timeout_error(timeout)
  return core.make_error("TimeoutError", "timed out after " .. timeout .. " s")
end

-- Waits on w with opts.timeout / opts.cancel; returns ok, value.
function S.wait(w, opts)
  local tok = opts and opts.cancel
  local timeout = opts and opts.timeout
  if tok then
    if tok.cancelled then
      cancel_wait(w)
    else
      tok._waits[w] = true
    end
  end
  local tid
  if timeout and timeout <= 0 and not w.done then
    -- already expired, as asyncio.wait_for(aw, 0): cancel at once (a
    -- result that is already on its way back still wins)
    w.timed_out = true
    cancel_wait(w, timeout_error(timeout))
  elseif timeout and not w.done then
    tid = core.timer(timeout)
    local tw = new_waiter(tid)
    tw.on_complete = function()
      w.timed_out = true
      cancel_wait(w, timeout_error(timeout))
    end
  end
  local ok, v = suspend(w)
  if tid then
    waiters[tid] = nil
    core.timer_stop(tid)
  end
  if tok then tok._waits[w] = nil end
  if not ok and w.timed_out and iserror(v, "CancelledError") then
    v = timeout_error(timeout)
  end
  return ok, v
end

-- Calls f(...) and waits for what it returns, under one GIL hold for both;
-- returns ok, value instead of raising.
function S.await_call(opts, f, ...)
  local w = new_waiter(core.submit_call(f, ...))
  return S.wait(w, opts)
end

-- Waits for the Python awaitable aw; returns ok, value.
function S.await_raw(aw, opts)
  local w = new_waiter(core.submit(aw))
  return S.wait(w, opts)
end

-- The scheduler's loop until t and every other live task have finished;
-- returns false if it stopped because nothing could wake anyone.
function S.drive(t)
  while t.state == "pending" or live > 0 do
    if not step(true) then return false end
  end
  return true
end

return S
