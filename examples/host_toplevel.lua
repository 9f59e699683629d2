-- host_toplevel.lua - in the host binary the script is the main task:
-- a top-level py.await yields, so spawned tasks run meanwhile, and the
-- host waits for them before it exits.
--   build/pyasync examples/host_toplevel.lua
local py = require "pyasync"

py.exec([[
import asyncio
async def fetch(name, delay):
    await asyncio.sleep(delay)
    return name.upper()
]])

local main_done = false
py.spawn(function()
  print("ticker: started while main awaits")
  repeat py.sleep(0.005) until main_done
  print("ticker: still running after main ended")
end)

print("main: awaiting")
print("main: got " .. py.await(py.main.fetch("ok", 0.01)))
print("main: done")
main_done = true
