-- task_group.lua - structured concurrency with py.taskgroup
-- (asyncio.TaskGroup semantics): it waits for every member; the first
-- failure cancels the others (their finally runs) and is raised.
local py = require "pyasync"

py.exec [[
import asyncio

cleanups = []

async def compute(x):
    await asyncio.sleep(0.01 * x)
    return x * x

async def guarded(name):
    try:
        await asyncio.sleep(10)
    finally:
        cleanups.append(name)

async def fail():
    await asyncio.sleep(0.01)
    raise ValueError("one member failed")
]]

local tasks = {}
py.taskgroup(function(tg)
  for _, x in ipairs({3, 4, 5}) do tasks[#tasks + 1] = tg:start(py.main.compute(x)) end
  -- Lua tasks can be members too
  tasks[#tasks + 1] = tg:spawn(function() return py.await(py.main.compute(6)) end)
end)
local results = {}
for i, t in ipairs(tasks) do results[i] = t:result() end
print("results: " .. table.concat(results, ", "))

local ok, e = pcall(py.taskgroup, function(tg)
  tg:start(py.main.guarded("a"))
  tg:start(py.main.guarded("b"))
  tg:start(py.main.fail())
end)
print("group failed:", ok, e.type, e.message)
local c = py.totable(py.main.cleanups)
table.sort(c)
print("cleaned up: " .. table.concat(c, ", "))
