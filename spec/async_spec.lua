-- async_spec.lua - py.await (API.md section 5): what it awaits, where it
-- yields and where it drives the loop, errors, contextvars, bad input, and
-- an idle runtime that burns no CPU.
local py = require "pyasync"
local support = require "support"

py.exec([[
import asyncio, contextvars

async def add_later(a, b):
    await asyncio.sleep(0.01)
    return a + b

async def add_now(a, b):
    return a + b

async def make_future():
    return asyncio.get_running_loop().create_future()

async def resolve(fut, v):
    await asyncio.sleep(0)
    fut.set_result(v)

async def make_task(v):
    return asyncio.ensure_future(add_later(v, 0))

class Awaitable:
    def __init__(self, v):
        self.v = v
    def __await__(self):
        yield from asyncio.sleep(0).__await__()
        return self.v

async def fails_inner():
    await asyncio.sleep(0)
    raise ValueError("deep failure")

async def fails_outer():
    await fails_inner()

cv = contextvars.ContextVar("cv", default="unset")

async def read_cv():
    await asyncio.sleep(0)
    return cv.get()

async def set_cv(v):
    cv.set(v)
    await asyncio.sleep(0)
    return cv.get()
]])

local main = py.main

describe("py.await", function()
  it("returns the result of a coroutine", function()
    assert.are.equal(42, py.await(main.add_later(17, 25)))
    assert.are.equal(3, py.await(main.add_now(1, 2)))
  end)

  it("converts results as a sync call does, whether they suspend or not", function()
    py.exec([=[
import enum
class Color(enum.IntEnum):
    RED = 3
class Meters(float):
    pass
RESULTS = [None, True, False, 0, -2**63, 2**63 - 1, 2**63, 1.25, Color.RED,
           Meters(2.5), "s", b"\\xff", [1]]
async def result_now(i):
    return RESULTS[i]
async def result_later(i):
    await asyncio.sleep(0)
    return RESULTS[i]
def result_sync(i):
    return RESULTS[i]
]=])
    local n = py.eval("len(RESULTS)")
    for i = 0, n - 1 do
      local want = main.result_sync(i)
      for _, f in ipairs{main.result_now, main.result_later} do
        local got = py.await(f(i))
        assert.are.equal(math.type(want) or type(want), math.type(got) or type(got), "result " .. i)
        if type(want) == "userdata" then
          assert.are.equal(tostring(want), tostring(got), "result " .. i)
        else
          assert.are.equal(want, got, "result " .. i)
        end
      end
    end
    assert.are.equal(3, py.await(main.result_later(8)))  -- IntEnum: an integer
    assert.are.equal("9223372036854775808", tostring(py.await(main.result_later(6))))
  end)

  it("awaits an asyncio Future made on the loop", function()
    local fut = py.await(main.make_future())
    assert.are.equal("Future", py.type(fut))
    assert.is_false(fut:done())
    py.start(main.resolve(fut, "resolved"))
    assert.are.equal("resolved", py.await(fut))
  end)

  it("awaits an asyncio Task", function()
    local t = py.await(main.make_task(4))
    assert.are.equal("Task", py.type(t))
    assert.are.equal(4, py.await(t))
  end)

  it("awaits any object with __await__", function()
    assert.are.equal(7, py.await(main.Awaitable(7)))
  end)

  it("awaits pyasync Tasks, Python and Lua", function()
    assert.are.equal(3, py.await(py.start(main.add_later(1, 2))))
    local a, b = py.await(py.spawn(function(x) return x, x * 2 end, 21))
    assert.are.equal(21, a)
    assert.are.equal(42, b)
  end)

  it("raises a Python error as a PyError with the Python traceback", function()
    local ok, e = pcall(py.await, main.fails_outer())
    assert.is_false(ok)
    assert.is_true(py.iserror(e, "ValueError"))
    assert.are.equal("ValueError", e.type)
    assert.are.equal("deep failure", e.message)
    assert.truthy(e.traceback:find("fails_outer", 1, true))
    assert.truthy(e.traceback:find("fails_inner", 1, true))
    -- the runtime keeps working
    assert.are.equal(5, py.await(main.add_later(2, 3)))
  end)

  it("yields inside a task, so other tasks run meanwhile", function()
    local log = py.run(function()
      local log = {}
      py.spawn(function() log[#log + 1] = "spawned task ran" end)
      log[#log + 1] = "before"
      local r = py.await(main.add_later(1, 1))
      log[#log + 1] = "awaited " .. r
      return log
    end)
    assert.are.same({"before", "spawned task ran", "awaited 2"}, log)
  end)

  it("drives the loop inside a coroutine pyasync does not run", function()
    local function in_plain_coroutine()
      local co = coroutine.wrap(function()
        return py.await(main.add_later(2, 3))
      end)
      return co()  -- returns the result: the await did not yield out of co
    end
    assert.are.equal(5, in_plain_coroutine())
    assert.are.equal(5, py.run(in_plain_coroutine))
  end)

  it("runs the host's main chunk as the main task, stock lua5.4's as plain code", function()
    local src = [[
      local py = require "pyasync"
      py.exec("import asyncio\nasync def later():\n    await asyncio.sleep(0.01)\n    return 'awaited'")
      local log = {}
      py.spawn(function() log[#log + 1] = "spawned ran" end)
      local r = py.await(py.main.later())
      log[#log + 1] = r
      print(coroutine.isyieldable(), table.concat(log, ","))
    ]]
    local out, err, code = support.run_script(src, "host")
    assert.are.equal(0, code, err)
    assert.are.equal("true\tspawned ran,awaited\n", out)
    out, err, code = support.run_script(src, "lua")
    assert.are.equal(0, code, err)
    assert.are.equal("false\tspawned ran,awaited\n", out)
  end)

  it("carries the caller's contextvars context", function()
    py.exec("cv.set('from the main thread')")
    assert.are.equal("from the main thread", py.await(main.read_cv()))
    py.exec("cv.set('changed')")
    assert.are.equal("changed", py.await(main.read_cv()))
    -- the coroutine ran in a copy: its own set() stays there
    assert.are.equal("inside", py.await(main.set_cv("inside")))
    assert.are.equal("changed", py.eval("cv.get()"))
  end)

  it("carries the context into py.start and py.gather too", function()
    py.exec("cv.set('started')")
    assert.are.equal("started", py.start(main.read_cv()):await())
    assert.are.same({"started", "started", n = 2}, py.gather(main.read_cv(), main.read_cv()))
  end)
end)

describe("py.await bad input", function()
  it("refuses what is not awaitable, and keeps working", function()
    local ok, err = pcall(py.await, 5)
    assert.is_false(ok)
    assert.matches("attempt to await a number value %(not awaitable%)", err)
    assert.are.equal(3, py.await(main.add_now(1, 2)))

    ok, err = pcall(py.await, py.eval("object()"))
    assert.is_false(ok)
    assert.matches("attempt to await a 'object' object %(not awaitable%)", err)
    assert.are.equal(3, py.await(main.add_now(1, 2)))

    ok, err = pcall(py.await, {})
    assert.is_false(ok)
    assert.matches("not awaitable", err)
    assert.are.equal(3, py.await(main.add_later(1, 2)))
  end)

  it("refuses bad options", function()
    local c = main.add_now(1, 2)
    local ok, err = pcall(py.await, c, 5)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'await'", err)
    c:close()
    assert.are.equal(3, py.await(main.add_now(1, 2)))
  end)

  it("refuses to await where a task cannot yield (a C call: table.sort)", function()
    py.exec("entered = []\nasync def mark():\n    entered.append(1)\n    return 1")
    local res = py.run(function()
      local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
        py.await(main.mark())
        return a < b
      end)
      return {ok = ok, err = err, after = py.await(main.add_later(1, 2))}
    end)
    assert.is_false(res.ok)
    assert.matches("cannot await here: Lua cannot yield", res.err)
    assert.are.equal(3, res.after)
    -- the coroutine never started, and was closed rather than left unawaited
    assert.are.equal(0, py.eval("len(entered)"))
  end)

  it("refuses to await inside __gc within a task", function()
    local res = py.run(function()
      local r = {}
      setmetatable({}, {__gc = function()
        r.ok, r.err = pcall(py.await, main.add_now(1, 1))
      end})
      collectgarbage()
      collectgarbage()
      r.after = py.await(main.add_later(1, 2))
      return r
    end)
    assert.is_false(res.ok)
    assert.matches("cannot await here", res.err)
    assert.are.equal(3, res.after)
  end)

  it("reports work started after shutdown as an error, without crashing", function()
    local src = [[
      local py = require "pyasync"
      py.exec("import asyncio\nasync def nop():\n    await asyncio.sleep(0)\n    return 1")
      print(py.await(py.main.nop()))
      local c = py.main.nop()
      py._core.shutdown()
      print(pcall(py.await, c))
      print(pcall(py.start, c))
      print(pcall(py.gather, c))
      print(pcall(py.sleep, 0))
      print("still running")
    ]]
    for _, how in ipairs({"host", "lua"}) do
      local out, err, code = support.run_script(src, how, nil, "timeout 60")
      assert.are.equal(0, code, how .. ": " .. err)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal("1", lines[1])
      for i = 2, 4 do
        assert.matches("^false\t.*pyasync is shut down: cannot start new work$", lines[i])
      end
      assert.are.equal("true", lines[5])  -- a Lua-side sleep needs no Python
      assert.are.equal("still running", lines[6])
    end
  end)
end)

describe("an idle runtime", function()
  local function idle_cpu()
    py.await(main.add_later(0, 0))  -- the loop thread is up
    local c0 = os.clock()
    py.sleep(0.3)
    return os.clock() - c0
  end

  it("burns no CPU while it sleeps, in a task or driving the loop", function()
    assert.is_true(py.run(idle_cpu) < 0.05)
    assert.is_true(idle_cpu() < 0.05)
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
