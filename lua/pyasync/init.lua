-- pyasync/init.lua - the module users require: the C core plus the task
-- scheduler (API.md section 5).  Tasks are Lua coroutines; a task that
-- awaits yields a "waiter" to the scheduler, and completions from the C
-- core (Python results, timers) wake the waiter.  Outside a task, a wait
-- drives the same loop until its waiter is woken.

local core = require "pyasync.core"

-- The public part of the C core (API.md sections 1-4, 7); the rest stays
-- reachable as py._core for the scheduler, specs and benchmarks.
local py = {}
for _, k in ipairs{"exec", "eval", "import", "builtins", "main", "version",
                   "python_version", "None", "LuaError", "getattr", "setattr",
                   "hasattr", "item", "setitem", "delitem", "call", "type",
                   "isinstance", "is", "bytes", "list", "dict", "tuple", "kw",
                   "totable", "release", "iter", "iserror", "buffer", "array",
                   "from_dlpack", "_buffer_stats"} do
  py[k] = core[k]
end

local co_running, co_yield, co_resume = coroutine.running, coroutine.yield, coroutine.resume
local co_status, co_isyieldable = coroutine.status, coroutine.isyieldable
local pack, unpack = table.pack, table.unpack

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

local function cancelled_error(msg)
  return core.make_error("CancelledError", msg or "")
end

-- Wakes w with (ok, value) once; later wakes are ignored.
local function wake(w, ok, value)
  if w.done then return end
  w.done, w.ok, w.value = true, ok, value
  if w.cleanup then w.cleanup(w) end
  local t = w.task
  if t then push_ready(t) end
end

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

-- One completion buffer per nesting level of step(): a wait can nest (a
-- blocking py.await inside a Lua function Python calls on the main thread).
local poll_bufs, poll_depth = {}, 0
local run_ready

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
      py._interrupt()
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

local function nothing_left()
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
           "synchronously from the loop thread (use py.async_fn)"
  end
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
    while not w.done do
      if not step(true) and not w.done then nothing_left() end
    end
  end
  return w.ok, w.value
end

-- Error values go on unchanged (level 0): a Lua error that crossed Python
-- or a task is re-raised as it was raised.
local function finish_wait(ok, value)
  if ok then return value end
  error(value, 0)
end

---------------------------------------------------------------------------
-- Tasks
---------------------------------------------------------------------------

local function report(t)
  local msg = t.traceback or tostring(t.error)
  io.stderr:write("pyasync: task failed and nobody awaited it:\n", msg, "\n")
end

local function msgh(e)
  local t = tasks_of[co_running()]
  if t then
    local s = type(e) == "string" and e or tostring(e)
    t.traceback = debug.traceback(s, 2)
  end
  return e
end

local function settle(t, ok, res)
  if ok and t.cancel_pending then  -- cancel() said true: it ends cancelled
    ok, res = false, pack(cancelled_error(t.cancel_msg))
  end
  t.state = ok and "done" or
            ((py.iserror(res[1], "CancelledError")) and "cancelled" or "failed")
  if ok then t.results = res else t.error = res[1] end
  live = live - 1
  local w = t.waiter
  if w then
    t.waiter = nil
    if ok then wake(w, true, res) else wake(w, false, t.error) end
  elseif not ok and t.state == "failed" and not t.awaited then
    unretrieved[t] = true  -- an awaited one's error goes to its awaiter
  end
  if t.on_done then
    local fns = t.on_done
    t.on_done = nil
    for i = 1, #fns do fns[i](t) end
  end
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
  else
    r = pack(co_resume(t.co, t.fn, unpack(t.args, 1, t.args.n)))
    t.fn, t.args = nil, nil
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

local function new_waiter(id)
  local w = {__waiter = true, id = id}
  if id then waiters[id] = w end
  return w
end

-- A task belongs to scope g (a py.run inside a task), or to its spawner's.
local function lua_task(fn, args, g)
  local t = setmetatable({kind = "lua", state = "pending", fn = fn, args = args}, Task)
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

local function check_fn(fn, name)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to '" .. name .. "' (function expected, got " .. type(fn) .. ")", 3)
  end
end

--- py.spawn(fn, ...) -> Task: run fn as a new task.
function py.spawn(fn, ...)
  check_fn(fn, "spawn")
  return lua_task(fn, pack(...))
end

local function py_task(id)
  local t = setmetatable({kind = "python", state = "pending", id = id}, Task)
  local w = new_waiter(id)
  w.on_complete = function(_, ok, value)
    t.state = ok and "done" or (py.iserror(value, "CancelledError") and "cancelled" or "failed")
    if ok then t.results = pack(value) else t.error = value end
    local tw = t.waiter
    if tw then
      t.waiter = nil
      if ok then wake(tw, true, t.results) else wake(tw, false, value) end
    elseif t.state == "failed" and not t.awaited then
      unretrieved[t] = true  -- reported at exit unless t:result() takes it
    end
    if t.on_done then
      local fns = t.on_done
      t.on_done = nil
      for i = 1, #fns do fns[i](t) end
    end
  end
  return t
end

local function check_awaitable(aw)
  if type(aw) ~= "userdata" then
    error("attempt to await a " .. type(aw) .. " value (not awaitable)", 3)
  end
end

--- py.start(aw) -> Task: schedule aw on the Python loop now.
function py.start(aw)
  if getmetatable(aw) == Task then return aw end
  check_awaitable(aw)
  return py_task(core.submit(aw))
end

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

-- Registers fn(t) to run when t finishes (at once if it has).
local function on_done(t, fn)
  if t.state ~= "pending" then fn(t) return end
  local l = t.on_done or {}
  l[#l + 1] = fn
  t.on_done = l
end
py._on_done = on_done

local function await_task(t, opts)
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
  -- finished, so its finally has run; _wait turns a timeout's
  -- CancelledError into TimeoutError
  w.on_cancel = function() t:cancel() end
  local ok, v = py._wait(w, opts)
  if ok then return unpack(v, 1, v.n) end
  error(v, 0)
end

function Task:await(opts) return await_task(self, opts) end

-- Waits until none of the tasks of g is left (g.w is woken then).  A
-- cancellation of the waiting task cancels them all and the wait goes on
-- until they have finished (asyncio.TaskGroup's __aexit__); returns the
-- CancelledError in that case, which the caller raises.
local function wait_all(g)
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

function Task:__tostring()
  return string.format("pyasync.Task(%s, %s)", self.kind, self.state)
end

---------------------------------------------------------------------------
-- Cancellation tokens
---------------------------------------------------------------------------

local CancelToken = {}
CancelToken.__index = CancelToken

function py.CancelToken()
  return setmetatable({cancelled = false, _waits = {}}, CancelToken)
end

function CancelToken:cancel()
  if self.cancelled then return end
  self.cancelled = true
  for w in pairs(self._waits) do cancel_wait(w) end
  self._waits = {}
end

py._CancelToken = CancelToken

---------------------------------------------------------------------------
-- await
---------------------------------------------------------------------------

-- Waits on w with opts.timeout / opts.cancel; returns ok, value.
function py._wait(w, opts)
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
    cancel_wait(w, core.make_error("TimeoutError", "timed out after " .. timeout .. " s"))
  elseif timeout and not w.done then
    tid = core.timer(timeout)
    local tw = new_waiter(tid)
    tw.on_complete = function()
      w.timed_out = true
      cancel_wait(w, core.make_error("TimeoutError", "timed out after " .. timeout .. " s"))
    end
  end
  local ok, v = suspend(w)
  if tid then
    waiters[tid] = nil
    core.timer_stop(tid)
  end
  if tok then tok._waits[w] = nil end
  if not ok and w.timed_out and py.iserror(v, "CancelledError") then
    v = core.make_error("TimeoutError", "timed out after " .. timeout .. " s")
  end
  return ok, v
end

--- py.await(aw [, opts]) -> result of aw.
function py.await(aw, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'await' (table expected, got " .. type(opts) .. ")", 2)
  end
  if getmetatable(aw) == Task then return await_task(aw, opts) end
  check_awaitable(aw)
  local tok = opts and opts.cancel
  local why = cannot_wait()
  if why or (tok and tok.cancelled) then
    -- aw never starts: close a coroutine so Python does not warn that it
    -- was never awaited
    if py.type(aw) == "coroutine" then aw:close() end
    error(why or cancelled_error("cancelled before the await"), 2)
  end
  local w = new_waiter(core.submit(aw))
  local ok, v = py._wait(w, opts)
  return finish_wait(ok, v)
end

--- py.sleep(s): a libuv timer; yields inside a task.
function py.sleep(s, opts)
  s = tonumber(s) or error("bad argument #1 to 'sleep' (number expected)", 2)
  local id = core.timer(s)
  local w = new_waiter(id)
  w.on_cancel = function(_, err)
    waiters[id] = nil
    core.timer_stop(id)
    wake(w, false, err)
  end
  local ok, v = py._wait(w, opts)
  if not ok then error(v, 0) end
end

--- py.run(fn, ...): run fn as a task and drive the loop until it and the
--- tasks spawned meanwhile have finished.
function py.run(fn, ...)
  check_fn(fn, "run")
  if current then  -- inside a task: wait for fn and the tasks under it
    local g = {tasks = {}, left = 0}
    local t = lua_task(fn, pack(...), g)
    t.awaited = true
    local cerr = wait_all(g)
    if t.results and not cerr then return unpack(t.results, 1, t.results.n) end
    error(t.error or cerr, 0)
  end
  local why = cannot_wait()
  if why then error(why, 2) end
  local t = lua_task(fn, pack(...))
  t.awaited = true
  while t.state == "pending" or live > 0 do
    if not step(true) then break end
  end
  if t.state == "pending" then nothing_left() end
  if t.results then return unpack(t.results, 1, t.results.n) end
  error(t.error, 0)
end

-- The host binary's main chunk: like py.run, but reports instead of raising.
function py._runmain(fn, ...)
  local t = py.spawn(fn, ...)
  t.awaited, t.is_main = true, true
  py._main_task = t
  while t.state == "pending" or live > 0 do
    if not step(true) then break end
  end
  py._main_task = nil
  if t.state == "done" then return true, unpack(t.results, 1, t.results.n) end
  if t.state == "pending" then return false, "pyasync: deadlock: the main task cannot finish" end
  local e = t.error
  return false, t.traceback or tostring(e), e
end

-- SIGINT in the host: cancel the main task and every other live task, so
-- the program ends even if some task would run forever.
function py._interrupt()
  local t = py._main_task
  if not t then return end
  t.interrupted = true
  t:cancel("interrupted")
  for _, o in pairs(tasks_of) do
    if o ~= t and o.state == "pending" then o:cancel("interrupted") end
  end
end

function py._report_unretrieved()
  for t in pairs(unretrieved) do report(t) end
  unretrieved = {}
end

---------------------------------------------------------------------------
-- gather and task groups
---------------------------------------------------------------------------

local function as_task(aw)
  if getmetatable(aw) == Task then return aw end
  return py.start(aw)
end

-- gather of Python awaitables only: one batch submission, one waiter for
-- all, completion ids mapped back to positions (no Task per item).
local function gather_raw(list, n, opts)
  local base = core.submit_batch(list, n)
  local last = base + n - 1
  local results = {n = n}
  local w = new_waiter(nil)
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
        wake(w, false, value)
        return
      end
    end
    if left == 0 and not w.done then
      if cerr then wake(w, false, cerr) else wake(w, true, results) end
    end
  end
  for id = base, last do waiters[id] = g end
  w.on_cancel = function(_, err)
    cerr = err
    cancel_rest()
  end
  local ok, v = py._wait(w, opts)
  if not ok then error(v, 0) end
  return v
end

--- py.gather(aw1, aw2, ...) or py.gather({...} [, opts]) -> results table.
function py.gather(...)
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
      if type(aw) == "userdata" and py.type(aw) == "coroutine" then aw:close() end
    end
    error(cancelled_error("cancelled before the gather"), 2)
  end
  local raw = n > 0
  for i = 1, n do
    if type(list[i]) ~= "userdata" then raw = false break end
  end
  if raw then return gather_raw(list, n, opts) end
  local ts = {}
  for i = 1, n do ts[i] = as_task(list[i]) end
  local results = {n = n}
  local w = new_waiter(nil)
  local left = n
  local rex = opts and opts.return_exceptions
  local cerr  -- the gather's own cancellation: it ends once all have
  local function one_done(i, t)
    if w.done then return end
    if cerr then
      left = left - 1
      if left == 0 then wake(w, false, cerr) end
      return
    end
    if t.results then results[i] = t.results[1]
    elseif rex then results[i] = t.error
    else
      for j = 1, n do if ts[j].state == "pending" then ts[j]:cancel() end end
      wake(w, false, t.error)
      return
    end
    left = left - 1
    if left == 0 then wake(w, true, results) end
  end
  for i = 1, n do
    ts[i].awaited = true
    unretrieved[ts[i]] = nil
    on_done(ts[i], function(t) unretrieved[t] = nil; one_done(i, t) end)
  end
  if left == 0 and not w.done then wake(w, true, results) end
  w.on_cancel = function(_, err)
    cerr = err
    for j = 1, n do ts[j]:cancel() end
    if left == 0 then wake(w, false, err) end
  end
  local ok, v = py._wait(w, opts)
  if not ok then error(v, 0) end
  return v
end

local TaskGroup = {}
TaskGroup.__index = TaskGroup

function TaskGroup:start(aw)
  if self.closed then error("task group is finished", 2) end
  local t = as_task(aw)
  t.awaited = true
  self.tasks[t] = true  -- the running ones, for cancelling
  self.left = self.left + 1
  on_done(t, function(d)
    unretrieved[d] = nil
    self.tasks[d] = nil
    self.left = self.left - 1
    if d.state == "failed" and not self.error then
      self.error = d.error
      for o in pairs(self.tasks) do o:cancel() end
    end
    if self.left == 0 and self.w then wake(self.w, true) end
  end)
  return t
end

function TaskGroup:spawn(fn, ...)
  return self:start(py.spawn(fn, ...))
end

--- py.taskgroup(fn): fn(tg); waits for every tg:start(aw); the first
--- failure cancels the rest and is raised.
function py.taskgroup(fn)
  check_fn(fn, "taskgroup")
  local tg = setmetatable({tasks = {}, left = 0}, TaskGroup)
  local ok, err = pcall(fn, tg)
  if not ok and not tg.error then
    tg.error = err
    for t in pairs(tg.tasks) do t:cancel() end
  end
  local cerr = wait_all(tg)
  tg.closed = true
  -- a child's failure wins over the cancellation it caused
  local e = tg.error or cerr
  if e then error(e, 0) end
end

---------------------------------------------------------------------------
-- Async iteration (API.md section 6)
---------------------------------------------------------------------------

local helper = core._helper

-- Awaits aw; returns ok, value instead of raising.
-- Calls f(...) and awaits what it returns, under one GIL hold for both.
local function await_call(opts, f, ...)
  local w = new_waiter(core.submit_call(f, ...))
  return py._wait(w, opts)
end

local function await_raw(aw, opts)
  local w = new_waiter(core.submit(aw))
  return py._wait(w, opts)
end

local AIter = {}
AIter.__index = AIter

local function aiter_next(st)
  local i = st.i
  if i < st.n then
    i = i + 1
    st.i = i
    local v = st.buf[i]
    st.buf[i] = nil
    return v
  end
  if st.done then return nil end
  local step = st.step
  if not step then step = st.src.step; st.step = step end
  local ok, batch = await_call(nil, step)
  if not ok then
    -- the iterator raised: it is finished.  A cancelled step (the task was
    -- cancelled) may leave a prefetch pump running: __close acloses it.
    if not py.iserror(batch, "CancelledError") then st.done = true end
    error(batch, 0)
  end
  if batch.n == 0 then
    st.done = true
    return nil
  end
  st.buf, st.i, st.n = batch, 1, batch.n
  local v = batch[1]
  batch[1] = nil
  return v
end

-- Prefetch: the items come through a ring (src/ring.c) without the GIL; Lua
-- waits only while it is empty.
local ring_pop, ring_wait, ring_disarm = core.ring_pop, core.ring_wait, core.ring_disarm

local function ring_slow(st)
  if st.done then return nil end
  local ring = st.ring
  if not st.started then
    -- not done if this fails (cancelled, or cannot wait here): __close or
    -- __gc then acloses the pump, and the next step starts it again
    local ok, e = await_call(nil, st.src.start)
    if not ok then error(e, 0) end
    st.started = true
  end
  while true do
    local v = ring_pop(ring)
    if v ~= nil then return v end
    if st.waiting then
      error("pyasync: this async iterator is already advanced by another task", 2)
    end
    local why = cannot_wait()
    local okw, id = pcall(ring_wait, ring, not why and ready_head > ready_tail)
    if not okw then st.done = true; error(id, 0) end  -- the generator's error
    if id == false then st.done = true; return nil end
    if id and why then
      ring_disarm(ring, id)  -- or its completion comes for nobody: harmless
      error(why, 2)
    end
    if id then
      local w = new_waiter(id)
      -- a cancelled wait ends now, unless the item is already on its way
      w.on_cancel = function(_, err)
        if ring_disarm(ring, id) then
          waiters[id] = nil
          wake(w, false, err)
        end
      end
      st.waiting = true
      local ok, e = py._wait(w)
      st.waiting = nil
      if not ok then error(e, 0) end
    end
  end
end

local function ring_next(st)
  local v = ring_pop(st.ring)
  if v ~= nil then return v end
  return ring_slow(st)
end

-- Can this coroutine wait for aclose() right here?
local function can_wait()
  local co, ismain = co_running()
  local t = not ismain and tasks_of[co]
  if t and t.co == co then return co_isyieldable() end
  return not core.in_remote_call()
end

-- Early exit (break, return, goto, error): aclose() has run before the next
-- statement.  Exhaustion or an error from the generator closes nothing.
function AIter.__close(st, err)
  if st.done or st.closed then return end
  st.closed = true
  if not can_wait() then
    core.aclose_nowait(st.src)
    return
  end
  local ok, e = await_raw(st.src:aclose())
  if not ok then
    local cancelled = py.iserror(e, "CancelledError")
    -- the task was cancelled at this very wait, perhaps before aclose()
    -- even started: it still runs, in the background
    if cancelled then core.aclose_nowait(st.src) end
    if err == nil then error(e, 0) end
    if not cancelled then
      io.stderr:write("pyasync: aclose() failed while unwinding: ", tostring(e), "\n")
    end
  end
end

-- An abandoned iterator: aclose() without waiting.
function AIter.__gc(st)
  if not st.done and not st.closed then
    st.closed = true
    core.aclose_nowait(st.src)
  end
end

--- py.aiter(x [, opts]) -> generic-for iterator over an async iterable.
function py.aiter(x, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'aiter' (table expected, got " .. type(opts) .. ")", 2)
  end
  local pf = opts and opts.prefetch
  if pf ~= nil and (math.type(pf) ~= "integer" or pf < 1) then
    error("bad argument #2 to 'aiter' (prefetch must be a positive integer)", 2)
  end
  if type(x) ~= "userdata" then
    error("bad argument #1 to 'aiter' (async iterable expected, got " .. type(x) .. ")", 2)
  end
  local src, ring = core.aiter_open(x, pf)
  local st = setmetatable({src = src, ring = ring, buf = nil, i = 0, n = 0,
                           done = false}, AIter)
  return ring and ring_next or aiter_next, st, nil, st
end

---------------------------------------------------------------------------
-- Queue
---------------------------------------------------------------------------

local Queue = {__pyobject = true}
local q_get_or_end = helper._q_get_or_end
Queue.__index = Queue

--- py.Queue([maxsize]) -> an asyncio.Queue on the loop thread.
function py.Queue(maxsize)
  if maxsize ~= nil and math.type(maxsize) ~= "integer" then
    error("bad argument #1 to 'Queue' (integer expected, got " .. type(maxsize) .. ")", 2)
  end
  return setmetatable({_obj = helper.Queue(maxsize or 0)}, Queue)
end

function Queue:put(v, opts)
  local ok, e = await_call(opts, self._obj.put, v)
  if not ok then error(e, 0) end
end

-- One item, or nil once the queue is closed and drained.
function Queue:get(opts)
  local ok, b = await_call(opts, q_get_or_end, self._obj)
  if not ok then error(b, 0) end
  return b[1]
end

function Queue:put_nowait(v)
  local ok, e = await_raw(helper._q_put_nowait(self._obj, v))
  if not ok then error(e, 0) end
end

function Queue:get_nowait()
  local ok, v = await_raw(helper._q_get_nowait(self._obj))
  if not ok then error(v, 0) end
  if v == nil then return py.None end
  return v
end

function Queue:qsize() return self._obj:qsize() end
function Queue:empty() return self._obj:empty() end
function Queue:full() return self._obj:full() end
function Queue:closed() return self._obj.closed end

function Queue:close()
  local ok, e = await_raw(helper._q_close(self._obj))
  if not ok then error(e, 0) end
end

--- q:items([token]): generic for until the queue is closed and drained or
--- the token is cancelled.
function Queue:items(token)
  local q = self._obj
  return function()
    if token and token.cancelled then return nil end
    local ok, b = await_call(token and {cancel = token}, q_get_or_end, q)
    if not ok then
      if token and token.cancelled and py.iserror(b, "CancelledError") then return nil end
      error(b, 0)
    end
    return b[1]
  end
end

function Queue:__tostring()
  return "pyasync.Queue(" .. tostring(self._obj:qsize()) .. " items)"
end

py._Queue = Queue

---------------------------------------------------------------------------
-- Python awaiting Lua
---------------------------------------------------------------------------

-- The Python exception for a Lua error value (a PyError gives its own);
-- tb is the traceback the task noted where the error was raised.
local function exception_of(err, tb)
  if py.iserror(err) then return err.exception end
  local ok, msg = pcall(tostring, err)
  if not ok or type(msg) ~= "string" then msg = type(err) end
  if not utf8.len(msg) then msg = msg:gsub("[\128-\255]", "?") end  -- a str, not bytes
  tb = tb or debug.traceback("", 2)
  if tb:sub(1, #msg + 1) == msg .. "\n" then tb = tb:sub(#msg + 2) end
  return py.LuaError(msg, tb, core.ref(err))
end

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
function py.async_fn(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'async_fn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local running = {}
  local function spawn(token, args, kwargs)
    local n, a = #args, {}
    for i = 1, n do a[i] = args[i - 1] end
    if #kwargs > 0 then n = n + 1; a[n] = py.totable(kwargs) end
    local t = py.spawn(fn, unpack(a, 1, n))
    t.awaited = true
    running[token] = t
    on_done(t, function(d)
      running[token] = nil
      unretrieved[d] = nil  -- its error goes to the Python awaiter
      local ok, cb = pcall(resolver, token, d)
      if not ok then  -- not even the error converts: say so
        cb = helper._resolver(token, false, py.LuaError(
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

---------------------------------------------------------------------------
-- init
---------------------------------------------------------------------------

--- py.init{path = {...}, loop = "asyncio"|"uvloop"}
function py.init(opts)
  opts = opts or {}
  if opts.loop then core.set_loop(opts.loop) end
  if opts.path then core._setpath(opts.path) end
  return py
end

py._core = core
py.Task = Task
py.TaskGroup = TaskGroup

-- Failed tasks that nobody awaited are reported when the state closes.
py._reporter = setmetatable({}, {__gc = function() py._report_unretrieved() end})

return py
