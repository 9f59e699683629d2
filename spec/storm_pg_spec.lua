-- storm_pg_spec.lua - 300 queries from Lua through an asyncpg pool of 5
-- (the shared PostgreSQL fixture), a third of them cancelled mid-flight by
-- opts.timeout or t:cancel(): every query ends exactly once, the pool keeps
-- working, no cancelled query is still running in the server
-- (pg_stat_activity), and no connection is leaked (5 idle, 5 backends).
-- fixtures: postgres
-- uvloop: yes
local py = require "pyasync"
local support = require "support"
local servers = require "servers"

local asyncpg = py.import "asyncpg"
local time = py.import "time"
local ns = py.eval("{}")
py.exec([[
import asyncio

def task_ids():
    return {id(t) for t in asyncio.all_tasks()}

def extra_tasks(base):
    me = asyncio.current_task()  # py.onloop's own task
    return [repr(t) for t in asyncio.all_tasks() if id(t) not in base and t is not me]
]], ns)

local N = 300
local IN_FLIGHT = 8
-- its own names: the runs of this spec (host, lua, uvloop) share the server
local RUN = (os.getenv("PYASYNC_MODE") or "lua") .. "_" .. (os.getenv("PYASYNC_LOOP") or "asyncio")
local APP = "pyasync_storm_pg_" .. RUN
local TAG = "/* storm_pg " .. RUN .. " */"
-- a query of ours still running in the server (not counting the watcher)
local ACTIVE = ("SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' AND query LIKE '%%%s%%'"
  .. " AND pid <> pg_backend_pid()"):format(TAG)
local BACKENDS = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'"):format(APP)

local settle = support.settle

local function plan()
  math.randomseed(5)
  local p = {}
  for i = 1, N do
    local q = {}
    local r = math.random()
    if r < 1 / 6 then
      q.cut = "timeout"
      q.timeout = 0.005 + math.random() * 0.05
    elseif r < 1 / 3 then
      q.cut = "cancel"
      q.delay = (math.random() < 0.1) and 0 or math.random() * 0.05
    end
    -- cut-short queries sleep long enough to be caught running
    if q.cut or math.random() < 0.5 then
      q.sleep = q.cut and (0.05 + math.random() * 0.2) or math.random() * 0.02
      q.sql = "SELECT $2::int FROM pg_sleep($1) " .. TAG
    else
      q.sql = "SELECT $2::int + 0 WHERE $1::float8 >= 0 " .. TAG
      q.sleep = 0.0  -- unused by the query; keeps the argument list the same
    end
    -- as a Python task (py.start of pool.fetchval) or a Lua task awaiting it
    q.how = (i % 2 == 0) and "python" or "lua"
    p[i] = q
  end
  return p
end

describe("PostgreSQL storm through an asyncpg pool of 5", function()
  it(("ends each of %d queries once; the pool and the server are clean after"):format(N), function()
    local pg = servers.postgres()
    local counts = {result = 0, timeout = 0, cancelled = 0, other = 0}
    local ends, wrong = {}, {}
    local final, active, backends, size, idle, extra, elapsed
    py.run(function()
      local tasks0 = py.onloop(ns.task_ids)
      local watcher = py.await(asyncpg.connect(pg.dsn), {timeout = 30})
      local pool = py.await(asyncpg.create_pool(pg.dsn, py.kw{
        min_size = 5, max_size = 5, server_settings = {application_name = APP}}), {timeout = 30})
      local p = plan()
      local t0 = time.monotonic()
      local next_i = 0
      local function worker()
        while next_i < N do
          next_i = next_i + 1
          local i, q = next_i, p[next_i]
          local t
          if q.how == "python" then
            t = py.start(pool:fetchval(q.sql, q.sleep, i))
          else
            t = py.spawn(function() return py.await(pool:fetchval(q.sql, q.sleep, i)) end)
          end
          local ok, r
          if q.cut == "timeout" then
            ok, r = pcall(t.await, t, {timeout = q.timeout})
          else
            if q.cut == "cancel" then
              if q.delay > 0 then py.sleep(q.delay) end
              t:cancel()
            end
            ok, r = pcall(t.await, t)
          end
          ends[i] = (ends[i] or 0) + 1
          local kind
          if ok then
            kind = "result"
            if r ~= i then wrong[#wrong + 1] = ("%d: got %s"):format(i, tostring(r)) end
          elseif py.iserror(r, "TimeoutError") then
            kind = "timeout"
          elseif py.iserror(r, "CancelledError") then
            kind = "cancelled"
          else
            kind = "other"
            wrong[#wrong + 1] = ("%d: %s"):format(i, tostring(r))
          end
          counts[kind] = counts[kind] + 1
          -- a plain query gets its result; a cut-short one its result (the
          -- cut came too late) or the error of the way it was cut
          if not (kind == "result" or (q.cut == "timeout" and kind == "timeout")
                  or (q.cut == "cancel" and kind == "cancelled")) then
            wrong[#wrong + 1] = ("%d (%s): %s %s"):format(i, q.cut or "plain", kind, tostring(r))
          end
        end
      end
      local workers = {}
      for w = 1, IN_FLIGHT do workers[w] = py.spawn(worker) end
      py.gather(workers, {timeout = 120})
      elapsed = time.monotonic() - t0

      -- the pool still works
      final = py.await(pool:fetchval("SELECT 42"), {timeout = 30})
      -- no cancelled query still runs in the server
      settle(10, function()
        active = py.await(watcher:fetchval(ACTIVE), {timeout = 10})
        return active == 0
      end)
      -- no connection leaked: the pool's five, all idle, and five backends
      settle(10, function()
        size, idle = pool:get_size(), pool:get_idle_size()
        backends = py.await(watcher:fetchval(BACKENDS), {timeout = 10})
        return size == 5 and idle == 5 and backends == 5
      end)
      py.await(pool:close(), {timeout = 30})
      py.await(watcher:close(), {timeout = 30})
      settle(10, function()
        extra = py.totable(py.onloop(ns.extra_tasks, tasks0))
        return #extra == 0
      end)
    end)

    for i = 1, N do
      if ends[i] ~= 1 then error(("query %d ended %s times"):format(i, tostring(ends[i]))) end
    end
    assert.are.same({}, wrong)
    assert.are.equal(N, counts.result + counts.timeout + counts.cancelled)
    assert.is_true(counts.timeout > 0 and counts.cancelled > 0, "no query was cut short")
    assert.are.equal(42, final)
    assert.are.equal(0, active, "cancelled queries still running in the server")
    assert.are.equal(5, size)
    assert.are.equal(5, idle)
    assert.are.equal(5, backends, "backends of the pool's application_name")
    assert.are.same({}, extra)
    io.stderr:write(("# storm_pg: %d queries in %.1fs: %d results, %d timeouts, %d cancelled\n")
      :format(N, elapsed, counts.result, counts.timeout, counts.cancelled))
    assert.is_true(support.drained())
  end)
end)
