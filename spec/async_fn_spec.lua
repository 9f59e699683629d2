-- async_fn_spec.lua - py.async_fn (API.md section 6): Python awaits a Lua
-- function, which runs as a Lua task and may itself await; cancelling the
-- Python side cancels the Lua task.
local py = require "pyasync"
local support = require "support"

local ns = py.eval("{}")
py.exec([[
import asyncio, threading
from pyasync import LuaError

async def call(f, *args, **kwargs):
    return await f(*args, **kwargs)

async def call_catching(f, *args):
    try:
        return await f(*args)
    except LuaError as e:
        return "LuaError: " + str(e)

async def gather_calls(f, n):
    return await asyncio.gather(*(f(i) for i in range(n)))

async def with_timeout(f, t):
    try:
        await asyncio.wait_for(f(), t)
        return "finished"
    except asyncio.TimeoutError:
        return "timed out"

async def cancel_after_start(f, started, finished):
    t = asyncio.ensure_future(f())
    await started.wait()
    t.cancel()
    try:
        await t
        r = "finished"
    except asyncio.CancelledError:
        r = "cancelled"
    await finished.wait()
    return r

async def signal(ev):
    ev.set()

def event():
    return asyncio.Event()

async def double_later(x):
    await asyncio.sleep(0)
    return x * 2
]], ns)

describe("py.async_fn", function()
  it("is awaited by Python and resolves to the first result", function()
    local f = py.async_fn(function(a, b) return a + b, "ignored" end)
    assert.is_true(py.eval("lambda f: callable(f)")(f))
    assert.are.equal(5, py.await(ns.call(f, 2, 3)))
    local g = py.async_fn(function() end)
    assert.is_nil(py.await(ns.call(g)))
    local h = py.async_fn(function() return {1, 2, 3} end)
    assert.are.same({1, 2, 3}, py.totable(py.await(ns.call(h))))
  end)

  it("runs the function as a task that may await and sleep", function()
    local trail = {}
    local f = py.async_fn(function(x)
      trail[#trail + 1] = coroutine.isyieldable() and "yieldable" or "not yieldable"
      py.sleep(0.001)
      local y = py.await(ns.double_later(x))
      trail[#trail + 1] = "awaited " .. y
      return y + 1
    end)
    assert.are.equal(21, py.await(ns.call(f, 10)))
    assert.are.same({"yieldable", "awaited 20"}, trail)
    -- many at once run concurrently as tasks
    local r = py.totable(py.await(ns.gather_calls(f, 10)))
    for i = 1, 10 do assert.are.equal((i - 1) * 2 + 1, r[i]) end
  end)

  it("passes keyword arguments as a trailing table", function()
    local f = py.async_fn(function(a, kw) return a .. ":" .. kw.k end)
    assert.are.equal("x:v", py.await(ns.call(f, "x", py.kw{k = "v"})))
  end)

  it("raises LuaError in Python for a Lua error", function()
    local f = py.async_fn(function(x)
      py.sleep(0)
      error("bad " .. x)
    end)
    local r = py.await(ns.call_catching(f, "input"))
    assert.matches("^LuaError: .*bad input", r)
    -- back in Lua, the original value
    local err = {"mine"}
    local g = py.async_fn(function() error(err) end)
    local ok, e = pcall(py.await, ns.call(g))
    assert.is_false(ok)
    assert.is_true(rawequal(err, e))
    -- a Python error raised in the Lua task goes back as itself
    local h = py.async_fn(function() return py.eval("1 // 0") end)
    ok, e = pcall(py.await, ns.call(h))
    assert.is_false(ok)
    assert.are.equal("ZeroDivisionError", e.type)
  end)

  it("is cancelled in Lua when the Python awaiter is cancelled", function()
    local seen
    local finished = ns.event()
    local started = ns.event()
    local g = py.async_fn(function()
      py.await(ns.signal(started))
      local ok, e = pcall(py.sleep, 10)
      seen = ok and "slept" or e.type
      py.await(ns.signal(finished))
    end)
    assert.are.equal("cancelled", py.await(ns.cancel_after_start(g, started, finished)))
    assert.are.equal("CancelledError", seen)

    seen = nil
    finished = ns.event()
    local f = py.async_fn(function()
      local ok, e = pcall(py.sleep, 10)
      seen = ok and "slept" or e.type
      py.await(ns.signal(finished))
    end)
    assert.are.equal("timed out", py.await(ns.with_timeout(f, 0.01)))
    py.await(finished:wait(), {timeout = 30})
    assert.are.equal("CancelledError", seen)
  end)

  it("a cancelled Lua task that does not catch dies of CancelledError", function()
    local seen
    local started, finished = ns.event(), ns.event()
    local f = py.async_fn(function()
      local _ <close> = setmetatable({}, {__close = function(_, err)
        seen = py.iserror(err, "CancelledError") and "CancelledError" or tostring(err)
        py.start(ns.signal(finished))
      end})
      py.await(ns.signal(started))
      py.sleep(10)
      seen = "slept"
    end)
    assert.are.equal("cancelled", py.await(ns.cancel_after_start(f, started, finished)))
    assert.are.equal("CancelledError", seen)
  end)

  it("fails the Python awaiter when the result cannot cross", function()
    py.exec([[
async def outcome(f):
    try:
        return "ok: %r" % (await f(),)
    except Exception as e:
        return type(e).__name__ + ": " + str(e)
]], ns)
    local cyc = {}
    cyc.self = cyc
    local r = py.await(ns.outcome(py.async_fn(function() return cyc end)))
    assert.matches("^ValueError: .*cyclic", r)
    r = py.await(ns.outcome(py.async_fn(function() return coroutine.create(print) end)))
    assert.matches("^TypeError: .*thread", r)
    local obj = setmetatable({}, {__tostring = function() return "custom error" end})
    r = py.await(ns.outcome(py.async_fn(function() error(obj) end)))
    assert.are.equal("LuaError: custom error", r)
    assert.are.equal(2, py.eval("1 + 1"))
  end)

  it("does not report a failure the Python awaiter received", function()
    local src = [[
local py = require "pyasync"
py.exec("async def c(f):\n    try:\n        await f()\n    except Exception as e:\n        return str(e)\n")
print(py.await(py.main.c(py.async_fn(function() error("handled", 0) end))))
]]
    local out, err, code = support.run_script(src, support.mode)
    assert.are.equal(0, code, err)
    assert.are.equal("handled\n", out)
    assert.are.equal("", err)
  end)

  it("rejects what is not a function", function()
    local ok, e = pcall(py.async_fn, 42)
    assert.is_false(ok)
    assert.matches("function expected", e)
    ok, e = pcall(py.async_fn, nil)
    assert.is_false(ok)
    assert.matches("function expected", e)
    local f = py.async_fn(function() return "still fine" end)
    assert.are.equal("still fine", py.await(ns.call(f)))
  end)

  it("refuses to be awaited on another loop instead of hanging (asyncio.run from Lua)", function()
    local f = py.async_fn(function(x) return x end)
    local ok, e = pcall(py.import("asyncio").run, ns.call(f))
    assert.is_false(ok)
    assert.are.equal("RuntimeError", e.type)
    assert.matches("pyasync's loop", e.message)
    assert.are.equal(5, py.await(ns.call(py.async_fn(function() return 5 end))))
  end)

  it("leaves nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
