-- pending_coroutine.lua - driving a coroutine object that Python code
-- created before Lua got hold of it (EvaluateAsync in the C# article).
local py = require "pyasync"

py.exec [[
import asyncio

async def async_pow(base, exp):
    await asyncio.sleep(0)
    return base ** exp

_pending_coro = async_pow(3, 10)
]]

print(py.await(py.eval("_pending_coro")))
