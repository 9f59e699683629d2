-- gather.lua - py.gather: awaitables run concurrently, results in order;
-- return_exceptions puts PyErrors in place instead of raising the first.
local py = require "pyasync"

py.exec [[
import asyncio

async def square(x):
    await asyncio.sleep(0.01)
    return x * x

async def fails():
    await asyncio.sleep(0)
    raise ValueError("bad input")
]]

local sq = py.main.square

-- varargs: coroutines, Tasks and Lua tasks mix
local r = py.gather(sq(2), py.start(sq(3)), py.spawn(function() return "from Lua" end))
print(r[1], r[2], r[3])

-- a table of awaitables, with options
local list = {}
for i = 1, 5 do list[i] = sq(i) end
print(table.concat(py.gather(list), " "))

r = py.gather({sq(4), py.main.fails(), sq(5)}, {return_exceptions = true})
print(r[1], r[2].type .. ": " .. r[2].message, r[3])

local ok, e = pcall(py.gather, sq(6), py.main.fails())
print(ok, e.type .. ": " .. e.message)
