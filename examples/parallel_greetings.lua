-- parallel_greetings.lua - three coroutines running concurrently on the one
-- Python loop (Task.WhenAll in the C# article): start them, then gather.
local py = require "pyasync"

py.exec [[
import asyncio

async def fetch_greeting(name):
    await asyncio.sleep(0.05)
    return f"Hello, {name}!"
]]

local greet = py.main.fetch_greeting
local tasks = {
  py.start(greet("Alice")),
  py.start(greet("Bob")),
  py.start(greet("Charlie")),
}
-- all three are running now; gather gives their results in order
local greetings = py.gather(tasks)
for _, g in ipairs(greetings) do print(g) end
