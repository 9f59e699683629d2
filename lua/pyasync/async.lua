-- pyasync/async.lua - the async API of API.md section 5 over the scheduler
-- (pyasync/sched.lua): awaiting, starting and spawning tasks, sleeping,
-- running the loop, the loop itself and calls on it, and the host binary's
-- main task.

local core = require "pyasync.core"
local S = require "pyasync.sched"

local M = {}
local pack, unpack = table.pack, table.unpack
local Task = S.Task

local function check_awaitable(aw)
  if type(aw) ~= "userdata" then
    error("attempt to await a " .. type(aw) .. " value (not awaitable)", 3)
  end
end

--- py.spawn(fn, ...) -> Task: run fn as a new task.
function M.spawn(fn, ...)
  S.check_fn(fn, "spawn")
  return S.lua_task(fn, pack(...))
end

--- py.start(aw) -> Task: schedule aw on the Python loop now.
function M.start(aw)
  if getmetatable(aw) == Task then return aw end
  check_awaitable(aw)
  return S.py_task(core.submit(aw))
end

function M.CancelToken()
  return setmetatable({cancelled = false, _waits = {}}, S.CancelToken)
end

-- Refuses a wait that cannot happen here, or with a cancelled token; a
-- coroutine that never starts is closed, so Python does not warn that it
-- was never awaited.
local function refuse(aw, opts)
  local tok = opts and opts.cancel
  local why = S.cannot_wait()
  if why or (tok and tok.cancelled) then
    if aw and core.type(aw) == "coroutine" then aw:close() end
    error(why or S.cancelled_error("cancelled before the await"), 3)
  end
end

local function check_opts(opts, name)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to '" .. name .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
end

--- py.await(aw [, opts]) -> result of aw.
function M.await(aw, opts)
  check_opts(opts, "await")
  if getmetatable(aw) == Task then return S.await_task(aw, opts) end
  check_awaitable(aw)
  refuse(aw, opts)
  local w = S.new_waiter(core.submit(aw))
  return S.finish_wait(S.wait(w, opts))
end

--- py.sleep(s): a libuv timer; yields inside a task.
function M.sleep(s, opts)
  s = tonumber(s) or error("bad argument #1 to 'sleep' (number expected)", 2)
  local id = core.timer(s)
  local w = S.new_waiter(id)
  w.on_cancel = function(_, err)
    S.waiters[id] = nil
    core.timer_stop(id)
    S.wake(w, false, err)
  end
  local ok, v = S.wait(w, opts)
  if not ok then error(v, 0) end
end

--- py.run(fn, ...): run fn as a task and drive the loop until it and the
--- tasks spawned meanwhile have finished.
function M.run(fn, ...)
  S.check_fn(fn, "run")
  if S.current() then  -- inside a task: wait for fn and the tasks under it
    local g = {tasks = {}, left = 0}
    local t = S.lua_task(fn, pack(...), g)
    t.awaited = true
    local cerr = S.wait_all(g)
    if t.results and not cerr then return unpack(t.results, 1, t.results.n) end
    error(t.error or cerr, 0)
  end
  local why = S.cannot_wait()
  if why then error(why, 2) end
  local t = S.lua_task(fn, pack(...))
  t.awaited = true
  S.drive(t)
  if t.state == "pending" then S.nothing_left() end
  if t.results then return unpack(t.results, 1, t.results.n) end
  error(t.error, 0)
end

local main_task

-- The host binary's main chunk: like py.run, but reports instead of raising.
function M._runmain(fn, ...)
  local t = M.spawn(fn, ...)
  t.awaited, t.is_main = true, true
  main_task = t
  S.drive(t)
  main_task = nil
  if t.state == "done" then return true, unpack(t.results, 1, t.results.n) end
  if t.state == "pending" then return false, "pyasync: deadlock: the main task cannot finish" end
  local e = t.error
  return false, t.traceback or tostring(e), e
end

-- SIGINT in the host: cancel the main task and every other live task, so
-- the program ends even if some task would run forever.
function S.interrupt()
  local t = main_task
  if not t then return end
  t.interrupted = true
  t:cancel("interrupted")
  for _, o in pairs(S.tasks_of) do
    if o ~= t and o.state == "pending" then o:cancel("interrupted") end
  end
end
M._interrupt = S.interrupt

M._report_unretrieved = S.report_unretrieved

-- A Lua task's name: "main" for the host's main chunk, else where its
-- function was defined.
local function task_name(t)
  if t.is_main then return "main" end
  local ok, info = pcall(debug.getinfo, t.entry, "S")
  if ok and info then return "task " .. info.short_src .. ":" .. info.linedefined end
  return "task"
end

--- py.tasks() -> the live tasks, {kind, name, state, traceback} each: Lua
--- tasks first (state "running", "waiting" or "ready"), then the loop's
--- Python tasks (state "running" or "waiting").
function M.tasks()
  local list, cur = {}, S.current()
  for co, t in pairs(S.tasks_of) do
    if t.state == "pending" and t.co == co then
      local state = t == cur and "running" or (t.waiting and "waiting" or "ready")
      local tb = debug.traceback(co, nil, 0)
      list[#list + 1] = {kind = "lua", name = task_name(t), state = state, traceback = tb,
                         task = t}
    end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  if core.loop_running() then
    local pt = core._helper._python_tasks()
    for i = 0, #pt - 1 do
      local d = pt[i]
      list[#list + 1] = {kind = "python", name = d.name, state = d.state, traceback = d.traceback,
                         coro = d.coro}
    end
  end
  return list
end

--- py.onloop(fn, ...) -> fn(...) called inside the running loop, on the loop
--- thread; waits as py.await does.  A trailing py.kw{} gives keywords.
function M.onloop(fn, ...)
  local t = type(fn)
  if t ~= "userdata" and t ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to 'onloop' (callable expected, got " .. t .. ")", 2)
  end
  refuse(nil, nil)
  return S.finish_wait(S.await_call(nil, core._helper._onloop, fn, ...))
end

return M
