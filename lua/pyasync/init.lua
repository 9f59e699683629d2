-- pyasync/init.lua - the module users require: the C core (pyasync.core,
-- API.md sections 1-4 and 7) and the Lua parts, one file per concept:
--   sched.lua     the task scheduler, Task, waits, cancellation tokens
--   async.lua     await, start, spawn, sleep, run (section 5)
--   gather.lua    gather and task groups
--   stream.lua    async iteration (section 6)
--   queue.lua     the Queue bridge
--   callback.lua  Python awaiting Lua (py.async_fn)
--   context.lua   context managers (py.with, py.enter)

local core = require "pyasync.core"
local S = require "pyasync.sched"

-- The public part of the C core; the rest stays reachable as py._core for
-- the scheduler, specs and benchmarks.
local py = {}
for _, k in ipairs{"exec", "eval", "import", "builtins", "main", "version",
                   "python_version", "None", "LuaError", "getattr", "setattr",
                   "hasattr", "item", "setitem", "delitem", "call", "type",
                   "isinstance", "is", "bytes", "list", "dict", "tuple", "kw",
                   "totable", "release", "iter", "iserror", "buffer", "array",
                   "from_dlpack", "_buffer_stats"} do
  py[k] = core[k]
end

for _, part in ipairs{"async", "gather", "stream", "queue", "callback", "context"} do
  for k, v in pairs(require("pyasync." .. part)) do py[k] = v end
end

--- py.init{path = {...}, loop = "asyncio"|"uvloop"}
function py.init(opts)
  opts = opts or {}
  if opts.loop then core.set_loop(opts.loop) end
  if opts.path then core._setpath(opts.path) end
  return py
end

py._core = core
py.Task = S.Task
py._CancelToken = S.CancelToken
py._on_done = S.on_done
py._wait = S.wait

-- py.loop: the loop the loop thread runs, started on first use.
setmetatable(py, {__index = function(t, k)
  if k == "loop" then
    local loop = core.loop()
    rawset(t, "loop", loop)
    return loop
  end
end})

-- os.exit() without closing the state leaves finalizing Python to an
-- atexit handler, which runs after the C++ static destructors of libraries
-- loaded later (libtorch's: its module teardown then crashes).  So Python
-- is shut down first, on the main thread, as at the end of a script.
if type(os) == "table" and type(os.exit) == "function" and not S.os_exit then
  local exit = os.exit
  S.os_exit = exit
  os.exit = function(...)  -- luacheck: ignore 122
    pcall(core.shutdown)
    return exit(...)
  end
end

-- Failed tasks that nobody awaited are reported when the state closes.
py._reporter = setmetatable({}, {__gc = function() S.report_unretrieved() end})

return py
