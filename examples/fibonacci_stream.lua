-- fibonacci_stream.lua - a Python async generator read by a Lua generic
-- for: each value is pulled lazily, one __anext__ per step, on the Python
-- loop thread.
local py = require "pyasync"

py.exec([[
import asyncio

async def fibonacci_stream(count):
    a, b = 0, 1
    for _ in range(count):
        await asyncio.sleep(0)
        yield a
        a, b = b, a + b
]])

local out = {}
for n in py.aiter(py.main.fibonacci_stream(8)) do
  out[#out + 1] = n
end
print(table.concat(out, " "))

-- prefetch = 4: the loop thread runs up to 4 items ahead of Lua and hands
-- them over in batches; the values are the same
out = {}
for n in py.aiter(py.main.fibonacci_stream(8), {prefetch = 4}) do
  out[#out + 1] = n
end
print(table.concat(out, " "))
