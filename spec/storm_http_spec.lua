-- storm_http_spec.lua - a storm of HTTP requests from Lua through one aiohttp
-- ClientSession to a local aiohttp server (spec/pyservers.py), 200 in flight,
-- a third of them cut short at random points by opts.timeout or t:cancel().
-- Every request ends exactly once (a body, a TimeoutError or a
-- CancelledError); every server handler finishes or is cancelled; afterwards
-- no extra asyncio task is left, the open fds are back to the baseline and
-- the RSS growth is bounded.  Real sockets, no mocks.
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

py.import("sys").path:insert(0, support.source .. "/spec")
local pyservers = py.import "pyservers"
local aiohttp = py.import "aiohttp"
local os_py = py.import "os"
local time = py.import "time"
local ns = py.eval("{}")
py.exec([[
import asyncio

def task_ids():
    return {id(t) for t in asyncio.all_tasks()}

# py.onloop runs its function in a task of its own: not counted

def extra_tasks(base):
    # asyncio.all_tasks() on the loop (called through py.onloop): the tasks
    # that were not there at the baseline
    me = asyncio.current_task()
    return [repr(t) for t in asyncio.all_tasks() if id(t) not in base and t is not me]
]], ns)

-- The storm's size: the same under the sanitizers (about 5 s here, 15-20 s
-- under ASan or TSan).
local SANITIZER = os.getenv("PYASYNC_SANITIZER")
local N = 5000
local IN_FLIGHT = 200
local DEADLINE = 240  -- seconds for the whole storm: a hang fails, never blocks ctest

local function fd_count()
  return #os_py.listdir("/proc/self/fd")
end

local function rss_kb()
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * 4
end

local settle = support.settle

-- One request, three ways of writing it (all from Lua):
--   "with":    py.with(session:get(url), fn)
--   "enter":   local resp <close> = py.enter(session:get(url))
--   "timeout": py.await(session:get(url), {timeout = t}), then resp:text()
--              with the same timeout; the response is released (or closed,
--              after a failed read) on the loop through py.onloop.
local function fetch(session, url, how, timeout)
  if how == "with" then
    return py.with(session:get(url), function(resp)
      return py.await(resp:text())
    end)
  elseif how == "enter" then
    local resp <close> = py.enter(session:get(url))
    return py.await(resp:text())
  end
  local resp = py.await(session:get(url), {timeout = timeout})
  local ok, body = pcall(py.await, resp:text(), {timeout = timeout})
  if not ok then
    py.onloop(resp.close)
    error(body, 0)
  end
  py.onloop(resp.release)
  return body
end

-- The plan for request i (seeded: the same storm every run).
local function plan(base)
  math.randomseed(14)
  local p = {}
  for i = 1, N do
    local r = math.random()
    local req = {}
    if r < 1 / 6 then
      req.cut = "timeout"
      req.timeout = 0.001 + math.random() * 0.04
      req.how = "timeout"
    elseif r < 1 / 3 then
      req.cut = "cancel"
      -- 0: cancelled before the task first runs
      req.delay = (math.random() < 0.1) and 0 or math.random() * 0.04
      req.how = (i % 2 == 0) and "with" or "enter"
    else
      req.how = ({"with", "enter", "timeout"})[i % 3 + 1]
      req.timeout = 30  -- generous: a plain request must get its body
    end
    if req.cut or math.random() < 0.2 then
      req.path = ("/slow?d=%.3f"):format(math.random() * 0.05)
      req.body = "slow"
    else
      req.path = "/hello"
      req.body = "hello"
    end
    req.url = base .. req.path
    p[i] = req
  end
  return p
end

describe("HTTP storm through one aiohttp ClientSession", function()
  it("warms up (imports, the loop, a first server and session)", function()
    py.run(function()
      local srv = py.await(pyservers.start_http(), {timeout = 30})
      local session = aiohttp.ClientSession()
      for _ = 1, 20 do
        assert.are.equal("hello", fetch(session, srv.url .. "/hello", "with"))
      end
      py.await(session:close(), {timeout = 30})
      py.await(srv:close(), {timeout = 30})
    end)
    collectgarbage()
    collectgarbage()
  end)

  it(("ends each of %d requests exactly once, and leaves nothing behind"):format(N), function()
    collectgarbage()
    collectgarbage()
    local fd0 = fd_count()
    local tasks0 = py.onloop(ns.task_ids)
    local rss0 = rss_kb()
    local t0 = time.monotonic()

    local counts = {body = 0, timeout = 0, cancelled = 0, other = 0}
    local ends, outcome, wrong = {}, {}, {}
    local planned = {timeout = 0, cancel = 0}
    local srv_counts, idle
    py.run(function()
      local srv = py.await(pyservers.start_http(), {timeout = 30})
      local session = aiohttp.ClientSession(py.kw{
        connector = aiohttp.TCPConnector(py.kw{limit = IN_FLIGHT})})
      local p = plan(srv.url)
      for i = 1, N do
        if p[i].cut then planned[p[i].cut] = planned[p[i].cut] + 1 end
      end

      local next_i = 0
      local function worker()
        while next_i < N do
          next_i = next_i + 1
          local i, req = next_i, p[next_i]
          local t = py.spawn(fetch, session, req.url, req.how, req.timeout)
          if req.cut == "cancel" then
            if req.delay > 0 then py.sleep(req.delay) end
            t:cancel()
          end
          local ok, r = pcall(t.await, t)
          ends[i] = (ends[i] or 0) + 1
          local kind
          if ok then
            kind = "body"
            if r ~= req.body then wrong[#wrong + 1] = ("%d: %s -> %s"):format(i, req.path, tostring(r)) end
          elseif py.iserror(r, "TimeoutError") then
            kind = "timeout"
          elseif py.iserror(r, "CancelledError") then
            kind = "cancelled"
          else
            kind = "other"
            wrong[#wrong + 1] = ("%d: %s"):format(i, tostring(r))
          end
          outcome[i] = kind
          counts[kind] = counts[kind] + 1
          -- a plain request gets its body; a cut-short one its body (the cut
          -- came too late) or the error of the way it was cut
          local allowed = (req.cut == "timeout" and kind == "timeout")
            or (req.cut == "cancel" and kind == "cancelled") or kind == "body"
          if not allowed then
            wrong[#wrong + 1] = ("%d (%s): %s %s"):format(i, req.cut or "plain", kind, tostring(r))
          end
        end
      end
      local workers = {}
      for w = 1, IN_FLIGHT do workers[w] = py.spawn(worker) end
      py.gather(workers, {timeout = DEADLINE})

      -- the server: every handler ran to its end or was cancelled
      idle = py.await(srv:idle(10), {timeout = 20})
      srv_counts = py.totable(srv:counts())
      py.await(session:close(), {timeout = 30})
      py.await(srv:close(), {timeout = 30})
    end)
    local elapsed = time.monotonic() - t0

    -- every request ended once, in one of the three ways
    for i = 1, N do
      if ends[i] ~= 1 then
        error(("request %d ended %s times (%s)"):format(i, tostring(ends[i]), tostring(outcome[i])))
      end
    end
    assert.are.same({}, wrong)
    assert.are.equal(0, counts.other)
    assert.are.equal(N, counts.body + counts.timeout + counts.cancelled)
    assert.is_true(counts.timeout > 0 and counts.cancelled > 0, "no request was cut short")
    -- a cancel that lands after the response is complete loses the race: the
    -- body stands; but no plain request is ever cut short
    assert.is_true(counts.timeout <= planned.timeout)
    assert.is_true(counts.cancelled <= planned.cancel)

    assert.is_true(idle, ("server handlers still running: %d started, %d finished, %d cancelled, %d failed")
      :format(srv_counts.started, srv_counts.finished, srv_counts.cancelled, srv_counts.failed))
    assert.are.equal(0, srv_counts.failed)
    assert.are.equal(srv_counts.started, srv_counts.finished + srv_counts.cancelled)
    assert.is_true(srv_counts.finished >= counts.body)

    -- nothing left behind: asyncio tasks, fds, memory
    local extra
    settle(10, function()
      extra = py.totable(py.onloop(ns.extra_tasks, tasks0))
      return #extra == 0
    end)
    assert.are.same({}, extra)
    collectgarbage()
    collectgarbage()
    local fd1
    settle(10, function()
      collectgarbage()
      py.eval("0")  -- drains deferred releases
      fd1 = fd_count()
      return fd1 <= fd0
    end)
    assert.is_true(fd1 <= fd0, ("open fds: %d before, %d after"):format(fd0, fd1))
    local rss1 = rss_kb()
    io.stderr:write(("# storm_http: %d requests in %.1fs (%s loop): %d bodies, %d timeouts, %d cancelled"
      .. " (planned %d timeouts, %d cancels); server %d started, %d finished, %d cancelled;"
      .. " fds %d -> %d; RSS %.1f -> %.1f MB\n"):format(
      N, elapsed, os.getenv("PYASYNC_LOOP") or "asyncio", counts.body, counts.timeout, counts.cancelled,
      planned.timeout, planned.cancel, srv_counts.started, srv_counts.finished, srv_counts.cancelled,
      fd0, fd1, rss0 / 1024, rss1 / 1024))
    -- Resident memory: skipped under sanitizers, which inflate it (ASan's
    -- quarantine keeps freed memory resident, TSan's shadow is a multiple of
    -- what is touched); elsewhere a generous bound that a per-request leak
    -- of a response, a connection or a task would still cross.
    if not SANITIZER then
      assert.is_true(rss1 - rss0 < 150 * 1024, ("RSS grew %d kB"):format(rss1 - rss0))
    end
    assert.is_true(support.drained())
  end)
end)
