-- threads_callbacks.lua - Lua functions called from Python threads: a
-- ThreadPoolExecutor mapping a Lua function, run_coroutine_threadsafe whose
-- coroutine calls Lua, executor futures awaited with py.await, and
-- callbacks scheduled on pyasync's loop with call_soon / call_later.
-- Lua never runs on two threads at once, so plain Lua state needs no lock.
local py = require "pyasync"

local asyncio = py.import "asyncio"
local futures = py.import "concurrent.futures"

py.exec [[
import asyncio

def slow_square(x):
    import time
    time.sleep(0.01)          # releases the GIL: the threads overlap here
    return x * x

async def ask_lua(f, x):
    await asyncio.sleep(0)
    return f(x)
]]

local calls = 0
local function describe(x)
  calls = calls + 1           -- no lock needed
  return ("%d -> %d"):format(x, py.main.slow_square(x))
end

local pool = futures.ThreadPoolExecutor(4)

-- map from Lua: the workers call the Lua function; map keeps the order
local results = py.totable(py.builtins.list(pool:map(describe, py.builtins.range(8))))
print(table.concat(results, ", "))
print("calls:", calls)

-- an executor future is awaitable
print("submit:", py.await(pool:submit(py.main.slow_square, 12), {timeout = 10}))
pool:shutdown()

-- asyncio.gather of to_thread calls, built in Lua
local g = asyncio.gather(asyncio.to_thread(py.main.slow_square, 2),
                         asyncio.to_thread(py.main.slow_square, 3))
print("to_thread:", table.concat(py.totable(py.await(g, {timeout = 10})), " "))

-- a blocking wait on the loop's work, whose coroutine calls back into Lua
local fut = asyncio.run_coroutine_threadsafe(py.main.ask_lua(function(x) return x + 1 end, 41), py.loop)
print("threadsafe:", fut:result(10))

-- callbacks on pyasync's loop, scheduled from Lua; an Event made in Lua
-- belongs to that loop too
local order = {}
local done = asyncio.Event()
py.loop:call_later(0.02, function() order[#order + 1] = "later"; done:set() end)
py.loop:call_soon(function() order[#order + 1] = "soon" end)
py.await(done:wait(), {timeout = 10})
print("callbacks:", table.concat(order, " then "))
