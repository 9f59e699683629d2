-- eco_dask_spec.lua - dask.distributed from Lua (docs/ecosystem.md): a
-- LocalCluster with two worker processes and an asynchronous Client made
-- from Lua and awaited, futures awaited with py.await, map + gather with
-- asynchronous=True, dask's sync/async rule as Lua sees it, and no worker
-- process left after closing.
local py = require "pyasync"
local support = require "support"

local distributed = py.import "distributed"
local psutil = py.import "psutil"
local os_ = py.import "os"

local T = {timeout = 60}
local ns = py.eval("{}")
py.exec([[
import os

def inc(x):
    return x + 1

def square(x):
    return x * x

def fail(x):
    raise ValueError("worker says no %d" % x)

def pid_of(_):
    return os.getpid()

def is_async(obj):
    return bool(obj.asynchronous)
]], ns)

-- processes spawned for dask workers among this process's descendants
local function worker_processes()
  local n = 0
  local ok, children = pcall(function() return psutil.Process():children(py.kw{recursive = true}) end)
  if not ok then return 0 end
  for _, c in pairs(children) do
    local okc, line = pcall(function() return table.concat(py.totable(c:cmdline()), " ") end)
    local alive = okc and c:is_running() and c:status() ~= "zombie"
    if alive and not line:find("resource_tracker", 1, true) then n = n + 1 end
  end
  return n
end

local function alive(pid)
  if not psutil.pid_exists(pid) then return false end
  local ok, st = pcall(function() return psutil.Process(pid):status() end)
  return ok and st ~= "zombie"
end

describe("dask.distributed from Lua", function()
  local cluster, client

  setup(function()
    cluster = py.await(distributed.LocalCluster(py.kw{
      n_workers = 2, threads_per_worker = 1, processes = true,
      dashboard_address = py.None, asynchronous = true}), T)
    client = py.await(distributed.Client(cluster, py.kw{asynchronous = true}), T)
  end)

  teardown(function()
    -- normally closed by the last case
    if client and client.status ~= "closed" then client:close() end
    if cluster and tostring(cluster.status) ~= "Status.closed" then cluster:close() end
  end)

  it("made from Lua: a cluster of two worker processes, a client on py.loop", function()
    assert.are.equal("LocalCluster", py.type(cluster))
    assert.are.equal(2, #cluster.workers)
    assert.are.equal("Client", py.type(client))
    assert.are.equal("running", client.status)
    assert.are.equal(2, worker_processes())
  end)

  it("client:submit futures awaited with py.await", function()
    assert.are.equal(42, py.await(client:submit(ns.inc, 41), T))
    local a, b = client:submit(ns.square, 7), client:submit(ns.inc, 1, py.kw{pure = false})
    local r = py.gather({a, b}, T)
    assert.are.same({49, 2, n = 2}, r)
  end)

  it("client:map + client:gather(futs, asynchronous=true)", function()
    local futs = client:map(ns.square, py.builtins.range(10))
    local r = py.totable(py.await(client:gather(futs, py.kw{asynchronous = true}), T))
    assert.are.same({0, 1, 4, 9, 16, 25, 36, 49, 64, 81}, r)
    -- the work ran in the worker processes, not here
    local pids = py.totable(py.await(client:gather(client:map(ns.pid_of, py.builtins.range(20),
      py.kw{pure = false}), py.kw{asynchronous = true}), T))
    local here = os_.getpid()
    for _, p in ipairs(pids) do assert.are_not.equal(here, p) end
  end)

  it("works from Lua tasks too", function()
    local r = py.run(function()
      local ts = {}
      for i = 1, 4 do
        ts[i] = py.spawn(function() return py.await(client:submit(ns.inc, i * 10), T) end)
      end
      return py.gather(ts, T)
    end)
    assert.are.same({11, 21, 31, 41, n = 4}, r)
  end)

  it("a task failing on a worker raises its exception", function()
    local ok, e = pcall(py.await, client:submit(ns.fail, 3), T)
    assert.is_false(ok)
    assert.are.equal("ValueError", e.type)
    assert.are.equal("worker says no 3", e.message)
  end)

  it("follows dask's rule: sync on the main thread, async on the loop", function()
    -- the client was made asynchronous, but Lua calls it from outside its
    -- loop thread, where dask runs calls synchronously
    assert.is_false(ns.is_async(client))
    assert.is_true(py.onloop(ns.is_async, client))
    -- so a plain gather returns the results, blocking until they are in
    local r = py.totable(client:gather(client:map(ns.inc, {1, 2, 3})))
    assert.are.same({2, 3, 4}, r)
    -- and asynchronous=true gives an awaitable instead
    local aw = client:gather(client:map(ns.inc, {4, 5}), py.kw{asynchronous = true})
    assert.is_true(py.builtins.hasattr(aw, "__await__"))
    assert.are.same({5, 6}, py.totable(py.await(aw, T)))
  end)

  it("as_completed as a for loop", function()
    local futs = client:map(ns.inc, py.builtins.range(5))
    local got = {}
    for f in py.aiter(distributed.as_completed(futs)) do got[#got + 1] = f:result() end
    table.sort(got)
    assert.are.same({1, 2, 3, 4, 5}, got)
  end)

  it("a Lua function cannot travel to a worker process: a clear error", function()
    local ok, e = pcall(function()
      return py.await(client:submit(function(x) return x end, 1), T)
    end)
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
    assert.truthy(e.message:find("pickle", 1, true))
  end)

  it("closing the client and the cluster leaves no worker process", function()
    local pids = {}
    for _, p in pairs(client:run(os_.getpid)) do pids[#pids + 1] = p end
    assert.are.equal(2, #pids)
    client:close()
    assert.are.equal("closed", client.status)
    cluster:close()
    assert.are.equal("Status.closed", tostring(cluster.status))
    local left
    for _ = 1, 100 do           -- at most ~10 s
      left = 0
      for _, p in ipairs(pids) do if alive(p) then left = left + 1 end end
      if left == 0 and worker_processes() == 0 then break end
      py.sleep(0.1)
    end
    assert.are.equal(0, left)
    assert.are.equal(0, worker_processes())
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)

describe("dask closed with awaits", function()
  it("a second cluster closed through py.onloop (its async close)", function()
    local cluster = py.await(distributed.LocalCluster(py.kw{
      n_workers = 1, threads_per_worker = 1, processes = true,
      dashboard_address = py.None, asynchronous = true}), T)
    local client = py.await(distributed.Client(cluster, py.kw{asynchronous = true}), T)
    assert.are.equal(3, py.await(client:submit(ns.inc, 2), T))
    -- on the loop, close() returns the coroutine to await
    py.await(py.onloop(client.close), T)
    py.await(py.onloop(cluster.close), T)
    assert.are.equal("closed", client.status)
    assert.are.equal("Status.closed", tostring(cluster.status))
    local n
    for _ = 1, 100 do
      n = worker_processes()
      if n == 0 then break end
      py.sleep(0.1)
    end
    assert.are.equal(0, n)
  end)
end)
