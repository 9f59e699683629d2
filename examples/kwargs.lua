-- kwargs.lua - keyword arguments for async functions: py.kw{...} as the
-- last argument, or py.call(f, {args}, {kwargs}).
local py = require "pyasync"

py.exec [[
import asyncio

async def compute_stats(values, *, scale=1.0):
    await asyncio.sleep(0)
    total = sum(values) * scale
    return {"count": len(values), "total": total, "mean": total / len(values)}
]]

local compute_stats = py.main.compute_stats

local stats = py.await(compute_stats({10, 20, 30, 40}, py.kw{scale = 2.0}))
print(("count=%d total=%.1f mean=%.1f"):format(stats.count, stats.total, stats.mean))

stats = py.await(py.call(compute_stats, {{1, 2, 3}}, {scale = 0.5}))
print(("count=%d total=%.1f mean=%.1f"):format(stats.count, stats.total, stats.mean))

-- Without the keyword the default applies.
stats = py.await(compute_stats({5, 7}))
print(("count=%d total=%.1f mean=%.1f"):format(stats.count, stats.total, stats.mean))
