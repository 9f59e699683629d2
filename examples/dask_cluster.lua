-- dask_cluster.lua - dask.distributed from Lua: a LocalCluster with two
-- worker processes and an asynchronous Client, both awaited; futures
-- awaited with py.await; map + gather.  Dask's rule: a call made outside
-- dask's event loop thread (Lua's main thread is) runs synchronously unless
-- it is given asynchronous=True, so gather takes it here.
local py = require "pyasync"

local distributed = py.import "distributed"
local T = {timeout = 60}

py.exec [[
def inc(x):
    return x + 1

def square(x):
    return x * x
]]

local cluster = py.await(distributed.LocalCluster(py.kw{
  n_workers = 2, threads_per_worker = 1, processes = true,
  dashboard_address = py.None, asynchronous = true}), T)
local client = py.await(distributed.Client(cluster, py.kw{asynchronous = true}), T)
print("workers:", #cluster.workers)

-- a future is awaitable
print("inc(41) =", py.await(client:submit(py.main.inc, 41), T))

-- map + gather, asynchronous
local futures = client:map(py.main.square, py.builtins.range(8))
local squares = py.await(client:gather(futures, py.kw{asynchronous = true}), T)
print("squares:", table.concat(py.totable(squares), " "))

-- several futures at once with py.gather
local r = py.gather({client:submit(py.main.inc, 1), client:submit(py.main.square, 9)}, T)
print("gathered:", r[1], r[2])

-- a synchronous call from Lua: blocks until the result is in
print("sync gather:", table.concat(py.totable(client:gather(client:map(py.main.inc, {10, 20}))), " "))

-- close: synchronous here (outside dask's loop), so no await
client:close()
cluster:close()
print("closed:", client.status, tostring(cluster.status))
