-- fire_and_forget.lua - awaiting a coroutine for its effect only, and
-- starting one that runs on while Lua goes on.
local py = require "pyasync"

py.exec [[
import asyncio

written = []

async def log(message):
    await asyncio.sleep(0.01)
    written.append(message)
]]

-- Await it and ignore the result (None comes back as nil).
assert(py.await(py.main.log("System started successfully")) == nil)

-- py.start returns a Task at once; the coroutine runs on the loop thread.
local t = py.start(py.main.log("Background write"))
print("started, done yet: " .. tostring(t:done()))
print("Lua goes on meanwhile")

-- At exit outstanding Python tasks are cancelled, so await the ones that
-- must finish (or keep the Task and look at t:done() later).
t:await()
print("done now: " .. tostring(t:done()))
for message in py.iter(py.main.written) do print("written: " .. message) end
