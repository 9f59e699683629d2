-- cancellation.lua - CancelToken before and during a call, and
-- Task:cancel().  Unlike a bridge that only abandons the caller's side,
-- the Python coroutine itself is cancelled: its finally runs before the
-- Lua side sees CancelledError.
local py = require "pyasync"

py.exec [[
import asyncio

events = []

async def slow_value(x):
    events.append(f"slow_value({x}) started")
    try:
        await asyncio.sleep(10)
        return x * 2
    finally:
        events.append(f"slow_value({x}) finally")
]]

local function show_events()
  for ev in py.iter(py.main.events) do print("  python: " .. ev) end
  py.main.events:clear()
end

-- Already cancelled before the call: raises at once, Python never runs.
local tok = py.CancelToken()
tok:cancel()
local ok, e = pcall(py.await, py.main.slow_value(21), {cancel = tok})
print("cancelled before the call:", ok, e.type)
show_events()

-- Cancelled during the call: another task cancels the token.
local tok2 = py.CancelToken()
py.spawn(function()
  py.sleep(0.05)
  tok2:cancel()
end)
ok, e = pcall(py.await, py.main.slow_value(22), {cancel = tok2})
print("cancelled during the call:", ok, e.type)
show_events()

-- A started Task, cancelled.
local t = py.start(py.main.slow_value(23))
py.sleep(0.05)
print("t:cancel() ->", t:cancel())
ok, e = pcall(t.await, t)
print("awaiting it:", ok, e.type, "cancelled:", t:cancelled())
show_events()
print("cancelling it again ->", t:cancel())
