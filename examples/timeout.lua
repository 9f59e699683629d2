-- timeout.lua - opts.timeout: on expiry the Python side is cancelled (its
-- finally runs) and py.await raises TimeoutError.
local py = require "pyasync"

py.exec [[
import asyncio

events = []

async def slow_value(x):
    try:
        await asyncio.sleep(5)
        return x
    finally:
        events.append("slow_value cleaned up")

async def quick_value(x):
    await asyncio.sleep(0.01)
    return x
]]

print("in time:", py.await(py.main.quick_value(7), {timeout = 5}))

local ok, e = pcall(py.await, py.main.slow_value(1), {timeout = 0.1})
print("too slow:", ok, e.type)
print("python:", py.main.events[0])

-- Timeouts work on Lua waits too.
ok, e = pcall(py.sleep, 10, {timeout = 0.05})
print("py.sleep:", ok, e.type)
