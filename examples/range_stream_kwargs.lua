-- range_stream_kwargs.lua - an async generator that takes keyword
-- arguments: py.kw{...} as the last argument passes them.
local py = require "pyasync"

py.exec([[
import asyncio

async def range_stream(*, start=0, stop, step=1):
    for v in range(start, stop, step):
        await asyncio.sleep(0)
        yield v
]])

local out = {}
for v in py.aiter(py.main.range_stream(py.kw{start = 2, stop = 10, step = 3})) do
  out[#out + 1] = v
end
print(table.concat(out, " "))
