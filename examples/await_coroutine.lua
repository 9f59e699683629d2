-- await_coroutine.lua - the simplest case: await a Python coroutine.
-- In the host binary the script is the main task, so py.await yields to the
-- scheduler while the coroutine runs on the Python loop thread.
local py = require "pyasync"

py.exec [[
import asyncio

async def slow_add(a, b):
    await asyncio.sleep(0.05)
    return a + b
]]

local slow_add = py.main.slow_add
local result = py.await(slow_add(17, 25))
print(("slow_add(17, 25) = %d"):format(result))

-- A coroutine that never suspends finishes on its first step.
py.exec [[
async def fast_add(a, b):
    return a + b
]]
print(("fast_add(1, 2) = %d"):format(py.await(py.main.fast_add(1, 2))))
