-- python_awaits_lua.lua - py.async_fn turns a Lua function into a Python
-- async callable: awaiting it runs the function as a Lua task, which may
-- itself wait (py.sleep, py.await).  A Lua error raises LuaError in Python,
-- and cancelling the Python awaiter cancels the Lua task.
local py = require "pyasync"

py.exec([[
import asyncio
from pyasync import LuaError

async def greet_all(greet, names):
    return await asyncio.gather(*(greet(n) for n in names))

async def try_it(f, arg):
    try:
        return await f(arg)
    except LuaError as e:
        return "LuaError: " + str(e)

async def too_slow(f, cleaned_up):
    try:
        await asyncio.wait_for(f(), 0.05)
    except asyncio.TimeoutError:
        await cleaned_up.wait()   # the Lua task has handled its cancellation
        return "timed out"

async def set_event(ev):
    ev.set()
]])

local greet = py.async_fn(function(name)
  py.sleep(0.01)                                       -- a Lua-side wait
  local n = py.await(py.eval("__import__('asyncio').sleep(0, 3)"))  -- a Python one
  return ("hello, %s (%d)"):format(name, n)
end)

for _, line in ipairs(py.totable(py.await(py.main.greet_all(greet, {"alice", "bob", "carol"})))) do
  print(line)
end

local check = py.async_fn(function(x)
  if x < 0 then error("negative input", 0) end
  return x * 2
end)
print(py.await(py.main.try_it(check, 21)))
print(py.await(py.main.try_it(check, -1)))

local seen = "not cancelled"
local cleaned_up = py.import("asyncio").Event()
local slow = py.async_fn(function()
  local ok, e = pcall(py.sleep, 10)
  if not ok then seen = "Lua task saw " .. e.type end
  py.start(py.main.set_event(cleaned_up))
end)
print(py.await(py.main.too_slow(slow, cleaned_up)))
print(seen)
