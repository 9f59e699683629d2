-- queue_producer_consumer.lua - a producer task and a consumer task share a
-- py.Queue (an asyncio.Queue on the Python loop).  maxsize = 2 gives
-- backpressure: put waits while the queue is full.  The consumer reads with
-- q:items(token) and cancels the token after five items, which ends its loop.
local py = require "pyasync"

local queue = py.Queue(2)

local producer = py.spawn(function()
  for _, msg in ipairs({"alpha", "beta", "gamma", "delta", "epsilon"}) do
    queue:put(msg)
    py.sleep(0.02)
  end
end)

local token = py.CancelToken()
local items = {}

local consumer = py.spawn(function()
  for item in queue:items(token) do
    items[#items + 1] = item
    if #items == 5 then token:cancel() end
  end
end)

py.gather(producer, consumer)
print(table.concat(items, " "))
print("token cancelled: " .. tostring(token.cancelled))

-- the same queue seen from Python is the asyncio.Queue itself
py.exec([[
import asyncio

async def python_producer(q):
    for word in ["zeta", "eta"]:
        await q.put(word)
]])
py.await(py.main.python_producer(queue))
print(queue:get() .. " " .. queue:get())
