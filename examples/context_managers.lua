-- context_managers.lua - Python's `with` / `async with` from Lua: py.with
-- calls a function inside a context manager, py.enter ties one to a Lua
-- to-be-closed variable.  An asyncio.Lock shared by Lua tasks, a timeout
-- (asyncio.timeout needs the running loop: made with py.onloop), a
-- temporary directory, and what the exit sees when the body fails.
local py = require "pyasync"

local asyncio = py.import "asyncio"
local tempfile = py.import "tempfile"
local os_path = py.import "os.path"

py.run(function()
  -- asyncio.Lock: the three tasks take turns
  local lock = asyncio.Lock()
  local log = {}
  local tasks = {}
  for i = 1, 3 do
    tasks[i] = py.spawn(function()
      py.with(lock, function()
        log[#log + 1] = "task " .. i .. " in"
        py.sleep(0.01)
        log[#log + 1] = "task " .. i .. " out"
      end)
    end)
  end
  for _, t in ipairs(tasks) do t:await() end
  print(table.concat(log, ", "))
  print("locked after:", lock:locked())

  -- asyncio.timeout cancels the body's wait and raises TimeoutError
  local ok, e = pcall(py.with, py.onloop(asyncio.timeout, 0.05), function()
    py.await(asyncio.sleep(10))
  end)
  print("timeout:", ok, e.type)
  print("in time:", py.with(py.onloop(asyncio.timeout, 5), function()
    return py.await(asyncio.sleep(0.01, "made it"))
  end))
end)

-- py.enter: the directory exists inside the block and is gone after it
local path
do
  local _ <close>, p = py.enter(tempfile.TemporaryDirectory())
  path = p
  py.with(py.builtins.open(p .. "/note.txt", "w"), function(f) f:write("hi") end)
  print("inside:", type(p), os_path.isdir(p), os_path.exists(p .. "/note.txt"))
end
print("after:", os_path.exists(path))

-- what the exit gets: a Lua error arrives as pyasync.LuaError, a Python
-- one as itself; the same error value goes on unless the exit suppresses it
py.exec [[
import contextlib
seen = []
@contextlib.contextmanager
def reporting(name):
    try:
        yield name
    except Exception as e:
        seen.append("exit of %s saw %s" % (name, type(e).__name__))
        raise
]]
local err = {code = 7}
local ok, e = pcall(py.with, py.main.reporting("a"), function() error(err) end)
print(py.main.seen[0])
print("same value:", ok, e == err, e.code)
ok, e = pcall(py.with, py.main.reporting("b"), function() py.eval("1 / 0") end)
print(py.main.seen[1])
print("python error:", ok, e.type)
local r = table.pack(py.with(py.import("contextlib").suppress(py.builtins.ZeroDivisionError),
                             function() py.eval("1 / 0") end))
print("suppressed, results:", r.n)
