-- script.lua - what examples/embed/host.c runs.  Its main chunk is a task
-- (the host starts it with pyasync_spawn), so it awaits Python coroutines
-- while the host's frames keep ticking; host.frame() is the frame counter
-- and on_frame(n) runs once a frame, between the host's pyasync_step calls.
-- luacheck: read globals host
local py = require "pyasync"
-- synchronous Python runs inside the step that runs it: import at load time
local np = py.import "numpy"

py.exec [[
import asyncio

async def load(name, seconds):
    await asyncio.sleep(seconds)        # a download, a model load, a query ...
    return f"{name} in {seconds} s"

async def events(n):
    for i in range(n):
        await asyncio.sleep(0.05)
        yield f"event {i}"
]]

local function log(fmt, ...)
  print(string.format("[frame %3d] " .. fmt, host.frame(), ...))
end

local updates = 0
function on_frame()  -- luacheck: ignore 111 (the host calls this global)
  updates = updates + 1
end

local start = host.frame()
log("start")

-- two loads at once, in a task of their own
local loader = py.spawn(function()
  local r = py.gather(py.main.load("textures", 0.3), py.main.load("sounds", 0.2))
  log("loaded %s, %s", r[1], r[2])
end)

-- meanwhile, a stream of Python events and a Lua-side sleep
for e in py.aiter(py.main.events(3)) do log("%s", e) end
py.sleep(0.1)
log("slept 0.1 s")
loader:await()

-- a queue between a Lua producer task and this consumer
local q = py.Queue()
py.spawn(function()
  for i = 1, 3 do q:put(i * i) end
  q:close()
end)
local sum = 0
for v in q:items() do sum = sum + v end
log("queue sum %d", sum)

log("numpy %s: %s", np.__version__, tostring(np.arange(6):reshape(2, 3):sum(0)))

log("done: %d frames ticked and %d on_frame updates ran while the script waited",
    host.frame() - start, updates)
