-- callback_spec.lua - Lua functions called by Python (API.md section 6): at
-- once on the main thread, or, from the loop thread (or any other thread),
-- on the main thread while the Python caller waits without the GIL.
local py = require "pyasync"
local support = require "support"

local ns = py.eval("{}")
py.exec([[
import asyncio, threading
from pyasync import LuaError

MAIN = threading.get_ident()

def ident():
    return threading.get_ident()

async def call_on_loop(f, *args):
    """Calls f from the loop thread; returns (result, caller's thread)."""
    return f(*args), threading.get_ident()

async def call_catching(f, *args):
    try:
        return f(*args)
    except LuaError as e:
        return "LuaError: " + str(e)

async def lua_traceback_of(f):
    try:
        f()
    except LuaError as e:
        return e.lua_traceback

def call_sync(f, *args):
    return f(*args)

def call_sync_catching(f, *args):
    try:
        return f(*args)
    except LuaError as e:
        return "LuaError: " + str(e)

async def call_many(f, n):
    return [f(i) for i in range(n)]

async def call_concurrently(f, n):
    async def one(i):
        await asyncio.sleep(0)
        return f(i)
    return await asyncio.gather(*(one(i) for i in range(n)))

async def call_in_executor(f, x):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, f, x)

async def call_in_thread(f, x):
    return await asyncio.to_thread(f, x)
]], ns)

local MAIN = ns.MAIN

describe("Lua functions called by Python", function()
  it("run at once when called on the main thread", function()
    local calls = 0
    local f = function(a, b) calls = calls + 1; return a * b, ns.ident() end
    local r = py.totable(ns.call_sync(f, 6, 7))
    assert.are.same({42, MAIN}, r)
    assert.are.equal(1, calls)
  end)

  it("called from the loop thread run on the main thread", function()
    local calls, ran_on = 0, nil
    local f = function(x)
      calls = calls + 1
      ran_on = ns.ident()  -- calling Python here: the caller released the GIL
      return x + 1
    end
    local r = py.totable(py.await(ns.call_on_loop(f, 41)))
    assert.are.equal(42, r[1])
    assert.are_not.equal(MAIN, r[2])  -- the caller ran on the loop thread
    assert.are.equal(MAIN, ran_on)    -- the Lua function on the main thread
    assert.are.equal(1, calls)
  end)

  it("called from the loop thread many times, in order", function()
    local seen = {}
    local f = function(i) seen[#seen + 1] = i; return i * i end
    assert.are.same({0, 1, 4, 9, 16}, py.totable(py.await(ns.call_many(f, 5))))
    assert.are.same({0, 1, 2, 3, 4}, seen)
    local r = py.totable(py.await(ns.call_concurrently(f, 20)))
    assert.are.equal(20, #r)
    for i = 1, 20 do assert.are.equal((i - 1) * (i - 1), r[i]) end
  end)

  it("called from other threads run on the main thread", function()
    local ran_on = {}
    local f = function(x) ran_on[#ran_on + 1] = ns.ident(); return x * 2 end
    assert.are.equal(10, py.await(ns.call_in_executor(f, 5)))
    assert.are.equal(14, py.await(ns.call_in_thread(f, 7)))
    assert.are.same({MAIN, MAIN}, ran_on)
  end)

  it("nest both ways: Lua -> Python -> Lua -> Python -> Lua", function()
    local trail = {}
    local inner = function(x)
      trail[#trail + 1] = "inner on " .. (ns.ident() == MAIN and "main" or "other")
      return x .. "+inner"
    end
    local outer = function(x)
      trail[#trail + 1] = "outer"
      -- a sync Python function, called here on the main thread, calls Lua
      return ns.call_sync(inner, x .. "+outer")
    end
    local r = py.totable(py.await(ns.call_on_loop(outer, "start")))
    assert.are.equal("start+outer+inner", r[1])
    assert.are.same({"outer", "inner on main"}, trail)
    -- and deeper, with Python in between each time
    local depth = 0
    local function rec(n)
      depth = math.max(depth, n)
      if n == 5 then return n end
      return ns.call_sync(rec, n + 1)
    end
    assert.are.equal(5, py.totable(py.await(ns.call_on_loop(rec, 1)))[1])
    assert.are.equal(5, depth)
  end)

  it("turn a Lua error into LuaError in Python", function()
    local f = function() error("oops from Lua") end
    local r = py.await(ns.call_catching(f))
    assert.matches("^LuaError: .*oops from Lua", r)
    assert.matches("^LuaError: .*oops from Lua", ns.call_sync_catching(f))
    local tb = py.await(ns.lua_traceback_of(f))
    assert.matches("stack traceback", tb)
    assert.is_true(py.eval("issubclass(__import__('pyasync').LuaError, Exception)"))
  end)

  it("re-raise the original Lua error value when it comes back to Lua", function()
    local err = {code = 42}
    local f = function() error(err) end
    local ok, e = pcall(py.await, ns.call_on_loop(f))
    assert.is_false(ok)
    assert.is_true(rawequal(err, e))
    ok, e = pcall(ns.call_sync, f)
    assert.is_false(ok)
    assert.is_true(rawequal(err, e))
    ok, e = pcall(py.await, ns.call_on_loop(function() error("plain", 0) end))
    assert.is_false(ok)
    assert.are.equal("plain", e)
  end)

  it("do not deadlock while the main thread waits for the loop", function()
    -- the main thread is inside py.await for the very coroutine that calls
    local f = function(x) return py.eval("1 + " .. x) end
    assert.are.equal(3, py.totable(py.await(ns.call_on_loop(f, 2)))[1])
    local src = [[
local py = require "pyasync"
py.exec("async def c(f):\n    return f(20) + f(22)\n")
print(py.await(py.main.c(function(x) return x end)))
]]
    local out, err, code = support.run_script(src, support.mode)
    assert.are.equal(0, code, err)
    assert.are.equal("42\n", out)
  end)

  it("cannot py.await from a sync call on the loop thread: a clear error", function()
    local f = function()
      return py.await(py.eval("__import__('asyncio').sleep(0, 'never')"))
    end
    local r = py.await(ns.call_catching(f))
    assert.matches("^LuaError: .*cannot await", r)
    assert.matches("py.async_fn", r)
    local g = function() py.sleep(0.01) end
    assert.matches("^LuaError: .*cannot await", py.await(ns.call_catching(g)))
    -- the runtime is still usable
    assert.are.equal(7, py.await(py.eval("__import__('asyncio').sleep(0, 7)")))
  end)

  it("cannot py.run from a sync call on the loop thread: a clear error", function()
    -- py.run would drive the loop that is blocked waiting for this call;
    -- run in a child process so that a deadlock fails instead of hanging
    local src = [[
local py = require "pyasync"
py.exec("from pyasync import LuaError\nasync def c(f):\n    try:\n        return f()\n    except LuaError as e:\n        return 'LuaError: ' + str(e)\n")
print(py.await(py.main.c(function()
  return py.run(function() return py.await(py.eval("__import__('asyncio').sleep(0, 5)")) end)
end)))
print(py.await(py.eval("__import__('asyncio').sleep(0, 'usable')")))
]]
    local out, err, code = support.run_script(src, support.mode, nil, "timeout 20")
    assert.are_not.equal(124, code, "deadlocked")
    assert.are.equal(0, code, err)
    assert.matches("^LuaError: .*cannot await.*\nusable\n$", out)
  end)

  it("cannot yield across Python: LuaError, no crash", function()
    local f = function() return coroutine.yield(1) end
    assert.matches("^LuaError: .*yield", py.await(ns.call_catching(f)))
    assert.matches("^LuaError: .*yield", ns.call_sync_catching(f))
    py.run(function()
      assert.matches("^LuaError: .*yield", ns.call_sync_catching(f))
      assert.matches("^LuaError: .*yield", py.await(ns.call_catching(f)))
    end)
    assert.are.equal(1, py.totable(py.await(ns.call_on_loop(function() return 1 end)))[1])
  end)

  it("cancelling a task from a callback that completes its await", function()
    -- the task's await finishes with a value after t:cancel() was called:
    -- the value is not lost and the task still sees CancelledError at its
    -- next await
    local t
    local f = function() t:cancel(); return "value" end
    t = py.spawn(function()
      local v = py.totable(py.await(ns.call_on_loop(f)))[1]
      local ok, e = pcall(py.sleep, 60)
      return v, ok, e and e.type
    end)
    local v, ok, etype = py.await(t)
    assert.are.equal("value", v)
    assert.is_false(ok)
    assert.are.equal("CancelledError", etype)
  end)

  it("converts arguments, keyword arguments and results", function()
    local f = function(a, b, kw)
      return string.format("%s %s %s", a, tostring(b), kw and kw.k)
    end
    py.exec("async def kwcall(f):\n    return f(1, None, k='v')\n", ns)
    assert.are.equal("1 nil v", py.await(ns.kwcall(f)))
    local multi = function() return 1, "two", nil end
    local t = py.totable(py.await(ns.call_on_loop(multi)))[1]
    assert.are.equal(1, t[1])
    assert.are.equal("two", t[2])
    assert.is_nil(t[3])
    local none = function() end
    assert.is_nil(py.totable(py.await(ns.call_on_loop(none)))[1])
  end)

  -- The Lua function runs on the calling thread (the main thread is inside
  -- Python, joining it): the sleeping task's libuv timer is the main
  -- thread's, which closes it at its next poll.
  it("run by another thread can cancel a sleeping task, and sleep there is refused", function()
    py.exec([[
import threading
def on_thread(f):
    out = []
    t = threading.Thread(target=lambda: out.append(f()))
    t.start()
    t.join(10)
    return out[0] if out else "no result"
]], ns)
    py.run(function()
      local sleeper = py.spawn(function() py.sleep(3600) end)
      py.sleep(0)
      local r = ns.on_thread(function()
        local ok, e = pcall(py.sleep, 0.01)
        return tostring(sleeper:cancel()) .. " " .. tostring(ok) .. " " .. tostring(e):match("cannot %a+")
      end)
      assert.are.equal("true false cannot wait", r)
      local ok, e = pcall(sleeper.await, sleeper, {timeout = 10})
      assert.is_false(ok)
      assert.are.equal("CancelledError", e.type)
    end)
  end)

  it("leaves nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
