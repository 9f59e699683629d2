-- context_spec.lua - context managers (API.md section 6, "Context
-- managers"): py.with(cm, fn, ...) and `local x <close>, v = py.enter(cm)`,
-- sync and async managers, what the exit is given, suppression, replacement,
-- cancellation, nesting, and the standard library's managers.
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

local asyncio = py.import "asyncio"
local contextlib = py.import "contextlib"
local ns = py.eval("{}")
py.exec([[
import asyncio, contextlib, sys

log = []

class CM:
    """Records what its exit is given; suppresses or raises on request."""
    def __init__(self, value="value", suppress=False, raise_exc=None):
        self.value, self.suppress, self.raise_exc = value, suppress, raise_exc
        self.entered = self.exited = False
        self.exit_args = None
        self.exc_info = None
    def __enter__(self):
        self.entered = True
        log.append("enter")
        return self.value
    def __exit__(self, t, v, tb):
        self.exited = True
        self.exit_args = (t, v, tb)
        self.exc_info = sys.exc_info()[1]
        log.append("exit " + (t.__name__ if t else "None"))
        if self.raise_exc is not None:
            raise self.raise_exc
        return self.suppress

class ACM(CM):
    """The same, as an async manager that suspends in both halves."""
    async def __aenter__(self):
        await asyncio.sleep(0)
        return self.__enter__()
    async def __aexit__(self, t, v, tb):
        await asyncio.sleep(0)
        return self.__exit__(t, v, tb)

def exit_type(cm):
    t = cm.exit_args[0]
    return t.__name__ if t else None

def exit_none(cm):
    return cm.exit_args == (None, None, None)

def exit_lua_value_ok(cm):
    import pyasync
    v = cm.exit_args[1]
    return isinstance(v, pyasync.LuaError)

class Reraise:
    """An exit that raises the very exception it was given."""
    def __enter__(self):
        return self
    def __exit__(self, t, v, tb):
        if v is not None:
            raise v

@contextlib.contextmanager
def gen_cm(x):
    log.append("gen enter")
    try:
        yield x
    except Exception as e:
        log.append("gen saw " + type(e).__name__)
        raise
    finally:
        log.append("gen exit")

@contextlib.asynccontextmanager
async def agen_cm(x):
    await asyncio.sleep(0)
    log.append("agen enter")
    try:
        yield x
    except BaseException as e:
        log.append("agen saw " + type(e).__name__)
        raise
    finally:
        await asyncio.sleep(0)
        log.append("agen exit")

async def forever():
    await asyncio.sleep(3600)

async def later(v, d=0.01):
    await asyncio.sleep(d)
    return v

async def ticks(n):
    for i in range(1, n + 1):
        await asyncio.sleep(0)
        yield i

async def notify_after(cond, flag):
    async with cond:
        flag.append("set")
        cond.notify_all()

async def wait_cond(cond, flag):
    async with cond:
        await cond.wait_for(lambda: flag)
        return list(flag)

def python_with_context(cm):
    """What Python's own `with` gives: the exit's exception chained to the body's."""
    try:
        with cm:
            raise KeyError("body")
    except BaseException as e:
        return type(e.__context__).__name__
]], ns)

local function take_log()
  local l = py.totable(ns.log)
  ns.log:clear()
  return l
end

-- runs f outside any task (under stock lua5.4: the main chunk's way, driving
-- the loop) and inside a task
local function both(f)
  f()
  py.run(f)
end

local managers = {sync = ns.CM, async = ns.ACM}

for kind, M in pairs(managers) do
  describe("py.with, " .. kind .. " manager", function()
    before_each(function() ns.log:clear() end)

    it("passes the value and the extra arguments, returns fn's results", function()
      both(function()
        local cm = M("v")
        local a, b, c, n = py.with(cm, function(v, x, y)
          assert.is_true(cm.entered)
          assert.is_false(cm.exited)
          return v, x, y, nil
        end, 1, 2)
        assert.are.same({"v", 1, 2}, {a, b, c})
        assert.is_nil(n)
        assert.are.equal(4, select("#", py.with(M(), function() return 1, 2, nil, nil end)))
        assert.are.equal(0, select("#", py.with(M(), function() end)))
      end)
    end)

    it("the exit gets (None, None, None) after a normal return", function()
      both(function()
        local cm = M()
        py.with(cm, function() end)
        assert.is_true(ns.exit_none(cm))
        assert.are.same({"enter", "exit None"}, take_log())
      end)
    end)

    it("a PyError reaches the exit as its original exception", function()
      both(function()
        local cm = M()
        local seen
        local ok, e = pcall(py.with, cm, function()
          local _, pe = pcall(py.eval, "1 // 0")
          seen = pe
          error(pe)
        end)
        assert.is_false(ok)
        assert.are.equal("ZeroDivisionError", ns.exit_type(cm))
        assert.is_true(py.is(cm.exit_args[1], seen.exception))
        assert.is_true(rawequal(seen, e))  -- the same value, not a copy
      end)
    end)

    it("a Lua error reaches the exit as pyasync.LuaError carrying it", function()
      both(function()
        local cm = M()
        local ok, e = pcall(py.with, cm, function() error("plain lua error") end)
        assert.is_false(ok)
        assert.are.equal("LuaError", ns.exit_type(cm))
        assert.is_true(ns.exit_lua_value_ok(cm))
        assert.is_true(py.isinstance(cm.exit_args[1], py.LuaError))
        assert.truthy(tostring(cm.exit_args[1]):find("plain lua error", 1, true))
        assert.matches("plain lua error$", e)
      end)
    end)

    it("re-raises the same error value, not a copy", function()
      both(function()
        for _, v in ipairs{{code = 7}, 42, "msg", true} do
          local ok, e = pcall(py.with, M(), function() error(v, 0) end)
          assert.is_false(ok)
          assert.is_true(rawequal(v, e))
        end
        local ok, e = pcall(py.with, M(), function() error(nil) end)
        assert.is_false(ok)
        assert.is_nil(e)
        -- an exit that re-raises the LuaError it got: still the original value
        local t = {}
        ok, e = pcall(py.with, ns.Reraise(), function() error(t) end)
        assert.is_false(ok)
        assert.is_true(rawequal(t, e))
      end)
    end)

    it("a true exit result suppresses the error; py.with returns nothing", function()
      both(function()
        local cm = M(nil, true)
        assert.are.equal(0, select("#", py.with(cm, function() error("swallowed") end)))
        assert.are.equal("LuaError", ns.exit_type(cm))
        assert.are.equal(0, select("#", py.with(M(nil, 1), function() py.eval("1 // 0") end)))
        -- after a normal return a true result changes nothing
        assert.are.equal("r", py.with(M(nil, true), function() return "r" end))
      end)
    end)

    it("an exception raised by the exit replaces the body's", function()
      both(function()
        local cm = M(nil, false, py.eval("ValueError('from the exit')"))
        local ok, e = pcall(py.with, cm, function() error("body") end)
        assert.is_false(ok)
        assert.are.equal("ValueError", e.type)
        assert.are.equal("from the exit", e.message)
        -- also after a normal return
        ok, e = pcall(py.with, M(nil, false, py.eval("KeyError('k')")), function() return 1 end)
        assert.is_false(ok)
        assert.are.equal("KeyError", e.type)
      end)
    end)

    it("cancelling the task inside the body exits with CancelledError; the task ends cancelled", function()
      py.run(function()
        local cm = M()
        local entered = asyncio.Event()
        local t = py.spawn(function()
          py.with(cm, function()
            entered:set()
            py.await(ns.forever())
          end)
          return "not reached"
        end)
        py.await(entered:wait(), {timeout = 10})
        t:cancel()
        local ok, e = pcall(t.await, t, {timeout = 10})
        assert.is_false(ok)
        assert.are.equal("CancelledError", e.type)
        assert.is_true(t:cancelled())
        assert.are.equal("CancelledError", ns.exit_type(cm))
      end)
    end)

    it("a failing enter raises without running fn or the exit", function()
      py.exec([[
class BadSync:
    def __enter__(self): raise KeyError("enter failed")
    def __exit__(self, *a): log.append("bad exit")
class BadAsync:
    async def __aenter__(self):
        await asyncio.sleep(0)
        raise KeyError("enter failed")
    async def __aexit__(self, *a): log.append("bad exit")
]], ns)
      both(function()
        for _, bad in ipairs{ns.BadSync(), ns.BadAsync()} do
          local ran = false
          local ok, e = pcall(py.with, bad, function() ran = true end)
          assert.is_false(ok)
          assert.are.equal("KeyError", e.type)
          assert.is_false(ran)
        end
        assert.are.same({}, take_log())
      end)
    end)
  end)
end

describe("py.with as Python's with", function()
  -- Python calls __exit__ while the body's exception is being handled:
  -- an exception the exit raises is chained to it (__context__), the exit's
  -- traceback argument is a traceback, and sys.exc_info() is that exception.
  it("chains an exception raised by the exit to the body's (__context__)", function()
    assert.are.equal("KeyError", ns.python_with_context(ns.CM(nil, false, py.eval("ValueError('x')"))))
    for _, M in ipairs{ns.CM, ns.ACM} do
      local ok, e = pcall(py.with, M(nil, false, py.eval("ValueError('x')")), function()
        py.eval("{}['body']")
      end)
      assert.is_false(ok)
      assert.are.equal("ValueError", e.type)
      assert.are.equal("KeyError", py.type(e.exception.__context__))
      ok, e = pcall(py.with, M(nil, false, py.eval("ValueError('x')")), function() error("lua body") end)
      assert.is_false(ok)
      assert.are.equal("LuaError", py.type(e.exception.__context__))
    end
  end)

  it("gives the exit a traceback for a Lua error too", function()
    for _, M in ipairs{ns.CM, ns.ACM} do
      local cm = M()
      pcall(py.with, cm, function() error("lua body") end)
      assert.are.equal("traceback", py.type(cm.exit_args[2]))
    end
  end)

  it("runs the exit with the body's exception as sys.exc_info()", function()
    local cm = ns.CM()
    pcall(py.with, cm, function() py.eval("1 // 0") end)
    assert.is_true(py.is(cm.exc_info, cm.exit_args[1]))
  end)
end)

describe("py.with nesting", function()
  before_each(function() ns.log:clear() end)

  it("nests, inner exits before outer, errors cross both", function()
    both(function()
      ns.log:clear()
      local r = py.with(ns.CM("outer"), function(o)
        return py.with(ns.ACM("inner"), function(i) return o .. "+" .. i end)
      end)
      assert.are.equal("outer+inner", r)
      assert.are.same({"enter", "enter", "exit None", "exit None"}, take_log())
      local outer, inner = ns.ACM(), ns.CM()
      local ok = pcall(py.with, outer, function()
        py.with(inner, function() error("deep") end)
      end)
      assert.is_false(ok)
      assert.are.equal("LuaError", ns.exit_type(inner))
      assert.are.equal("LuaError", ns.exit_type(outer))
      -- the inner one suppresses: the outer one sees a normal end
      outer, inner = ns.ACM(), ns.ACM(nil, true)
      assert.are.equal("after", py.with(outer, function()
        py.with(inner, function() error("deep") end)
        return "after"
      end))
      assert.is_true(ns.exit_none(outer))
    end)
  end)

  it("inside a py.aiter loop, and a py.aiter loop left early inside py.with", function()
    both(function()
      local seen = {}
      for i in py.aiter(ns.ticks(3)) do
        py.with(ns.ACM(i), function(v) seen[#seen + 1] = v end)
      end
      assert.are.same({1, 2, 3}, seen)
      local cm = ns.ACM()
      py.with(cm, function()
        for i in py.aiter(ns.ticks(100)) do
          if i == 2 then break end
        end
      end)
      assert.is_true(ns.exit_none(cm))
      -- an error from the loop body passes through both
      local ok = pcall(py.with, cm, function()
        for i in py.aiter(ns.ticks(100)) do
          if i == 2 then error("in the loop") end
        end
      end)
      assert.is_false(ok)
      assert.are.equal("LuaError", ns.exit_type(cm))
    end)
  end)

  it("inside py.taskgroup, one manager per task", function()
    both(function()
      local cms = {}
      py.taskgroup(function(tg)
        for i = 1, 4 do
          cms[i] = ns.ACM(i)
          tg:spawn(function()
            return py.with(cms[i], function(v) return py.await(ns.later(v * 10)) end)
          end)
        end
      end)
      for i = 1, 4 do assert.is_true(ns.exit_none(cms[i])) end
      -- a failing body fails the group, and the others exit cancelled
      local others = {ns.ACM(), ns.ACM()}
      local ok, e = pcall(py.taskgroup, function(tg)
        for i = 1, 2 do
          tg:spawn(function()
            py.with(others[i], function() py.await(ns.forever()) end)
          end)
        end
        tg:spawn(function()
          py.with(ns.CM(), function()
            py.await(ns.later(nil))
            error("group failure")
          end)
        end)
      end)
      assert.is_false(ok)
      assert.truthy(tostring(e.message or e):find("group failure", 1, true))
      for i = 1, 2 do assert.are.equal("CancelledError", ns.exit_type(others[i])) end
    end)
  end)
end)

describe("py.enter", function()
  before_each(function() ns.log:clear() end)

  it("returns a proxy of the value and the value itself", function()
    both(function()
      for _, M in ipairs{ns.CM, ns.ACM} do
        ns.log:clear()
        do
          local x <close>, v = py.enter(M("str"))
          assert.are.equal("userdata", type(x))
          assert.are.equal("str", tostring(x))
          assert.are.equal("str", v)
        end
        do
          local x <close>, v = py.enter(M(5))
          assert.are.equal("userdata", type(x))
          assert.are.equal(5, v)
          assert.are.equal("integer", math.type(v))
        end
        do
          local x <close>, v = py.enter(M(py.None))
          assert.are.equal("userdata", type(x))
          assert.are.equal("None", tostring(x))
          assert.is_nil(v)
        end
        assert.are.same({"enter", "exit None", "enter", "exit None", "enter", "exit None"},
                        take_log())
      end
    end)
  end)

  it("exits at the end of the block", function()
    both(function()
      for _, M in ipairs{ns.CM, ns.ACM} do
        local cm = M()
        do
          local _ <close> = py.enter(cm)
          assert.is_true(cm.entered)
          assert.is_false(cm.exited)
        end
        assert.is_true(cm.exited)
        assert.is_true(ns.exit_none(cm))
      end
    end)
  end)

  it("exits on break, return and goto", function()
    both(function()
      for _, M in ipairs{ns.CM, ns.ACM} do
        local cms = {}
        for i = 1, 3 do
          cms[i] = M(i)
          local _ <close> = py.enter(cms[i])
          if i == 2 then break end
        end
        assert.is_true(cms[1].exited and cms[2].exited)
        assert.is_nil(cms[3])

        local cm = M()
        local function f()
          local _ <close>, v = py.enter(cm)
          assert.is_false(cm.exited)
          return v
        end
        assert.are.equal("value", f())
        assert.is_true(cm.exited)

        cm = M()
        do
          local _ <close> = py.enter(cm)
          goto out
        end
        ::out::
        assert.is_true(cm.exited)
        assert.is_true(ns.exit_none(cm))
      end
    end)
  end)

  it("on an error the exit sees it, and the error goes on unchanged", function()
    both(function()
      for _, M in ipairs{ns.CM, ns.ACM} do
        local cm = M()
        local err = {}
        local ok, e = pcall(function()
          local _ <close> = py.enter(cm)
          error(err)
        end)
        assert.is_false(ok)
        assert.is_true(rawequal(err, e))
        assert.are.equal("LuaError", ns.exit_type(cm))

        cm = M()
        ok, e = pcall(function()
          local _ <close> = py.enter(cm)
          py.eval("1 // 0")
        end)
        assert.is_false(ok)
        assert.are.equal("ZeroDivisionError", e.type)
        assert.are.equal("ZeroDivisionError", ns.exit_type(cm))
        -- a true exit result cannot suppress in __close: the error goes on
        ok, e = pcall(function()
          local _ <close> = py.enter(M(nil, true))
          error("still raised")
        end)
        assert.is_false(ok)
        assert.matches("still raised$", e)
      end
    end)
  end)

  it("an exception raised by the exit replaces the unwinding error", function()
    both(function()
      for _, M in ipairs{ns.CM, ns.ACM} do
        local ok, e = pcall(function()
          local _ <close> = py.enter(M(nil, false, py.eval("ValueError('exit')")))
          error("body")
        end)
        assert.is_false(ok)
        assert.are.equal("ValueError", e.type)
      end
    end)
  end)

  it("a cancelled task exits its py.enter managers with CancelledError", function()
    py.run(function()
      for _, M in ipairs{ns.CM, ns.ACM} do
        local cm = M()
        local entered = asyncio.Event()
        local t = py.spawn(function()
          local _ <close> = py.enter(cm)
          entered:set()
          py.await(ns.forever())
        end)
        py.await(entered:wait(), {timeout = 10})
        t:cancel()
        assert.is_false(pcall(t.await, t, {timeout = 10}))
        assert.is_true(t:cancelled())
        assert.are.equal("CancelledError", ns.exit_type(cm))
      end
    end)
  end)
end)

describe("py.with in the main chunk", function()
  it("works in stock lua5.4's main chunk and in the host's main task", function()
    local src = [[
      local py = require "pyasync"
      py.exec([=[
import asyncio, contextlib
log = []
@contextlib.asynccontextmanager
async def acm(x):
    await asyncio.sleep(0)
    try:
        yield x
    finally:
        await asyncio.sleep(0)
        log.append("exited")
]=])
      local r = py.with(py.main.acm(1), function(v)
        return v + py.await(py.import("asyncio").sleep(0.01, 1), {timeout = 5})
      end)
      do
        local _ <close>, v = py.enter(py.main.acm(2))
        r = r + v
      end
      local ok = pcall(py.with, py.main.acm(3), function() error("x") end)
      print(coroutine.isyieldable(), r, ok, #py.main.log)
    ]]
    for _, how in ipairs{"host", "lua"} do
      local out, err, code = support.run_script(src, how, nil, "timeout 60")
      assert.are.equal(0, code, how .. ": " .. err)
      assert.are.equal((how == "host" and "true" or "false") .. "\t4\tfalse\t3\n", out)
    end
  end)
end)

describe("standard library managers", function()
  before_each(function() ns.log:clear() end)

  it("contextlib.contextmanager: value, exit, errors thrown into the generator", function()
    both(function()
      assert.are.equal(6, py.with(ns.gen_cm(3), function(v) return v * 2 end))
      assert.are.same({"gen enter", "gen exit"}, take_log())
      local ok, e = pcall(py.with, ns.gen_cm(3), function() error("in body") end)
      assert.is_false(ok)
      assert.matches("in body$", e)
      assert.are.same({"gen enter", "gen saw LuaError", "gen exit"}, take_log())
    end)
  end)

  it("contextlib.asynccontextmanager, with py.with and py.enter", function()
    both(function()
      assert.are.equal(8, py.with(ns.agen_cm(4), function(v) return v * 2 end))
      assert.are.same({"agen enter", "agen exit"}, take_log())
      do
        local _ <close>, v = py.enter(ns.agen_cm(5))
        assert.are.equal(5, v)
      end
      assert.are.same({"agen enter", "agen exit"}, take_log())
      local ok = pcall(py.with, ns.agen_cm(6), function() py.eval("1 // 0") end)
      assert.is_false(ok)
      assert.are.same({"agen enter", "agen saw ZeroDivisionError", "agen exit"}, take_log())
    end)
  end)

  it("contextlib.suppress decides on the Python exception", function()
    both(function()
      assert.are.equal(0, select("#", py.with(contextlib.suppress(py.builtins.ZeroDivisionError),
                                              function() py.eval("1 // 0") end)))
      assert.are.equal(0, select("#", py.with(contextlib.suppress(py.LuaError),
                                              function() error("lua") end)))
      local ok, e = pcall(py.with, contextlib.suppress(py.builtins.KeyError), function() error("kept") end)
      assert.is_false(ok)
      assert.matches("kept$", e)
    end)
  end)

  it("contextlib.AsyncExitStack with managers pushed from Lua", function()
    both(function()
      local a, b = ns.ACM("a"), ns.CM("b")
      py.with(contextlib.AsyncExitStack(), function(stack)
        assert.are.equal("a", py.await(stack:enter_async_context(a), {timeout = 5}))
        assert.are.equal("b", stack:enter_context(b))
      end)
      assert.is_true(ns.exit_none(a) and ns.exit_none(b))
    end)
  end)

  it("asyncio.Lock: held inside, released after, mutual exclusion between tasks", function()
    both(function()
      local lock = asyncio.Lock()
      py.with(lock, function() assert.is_true(lock:locked()) end)
      assert.is_false(lock:locked())
      pcall(py.with, lock, function() error("x") end)
      assert.is_false(lock:locked())
      local inside, max = 0, 0
      local tasks = {}
      for i = 1, 5 do
        tasks[i] = py.spawn(function()
          py.with(lock, function()
            inside = inside + 1
            if inside > max then max = inside end
            py.await(ns.later(nil, 0.001))
            inside = inside - 1
          end)
        end)
      end
      for i = 1, 5 do tasks[i]:await{timeout = 10} end
      assert.are.equal(1, max)
      assert.is_false(lock:locked())
    end)
  end)

  it("asyncio.Semaphore(2) lets two bodies in at a time", function()
    both(function()
      local sem = asyncio.Semaphore(2)
      local inside, max = 0, 0
      local tasks = {}
      for i = 1, 6 do
        tasks[i] = py.spawn(function()
          local _ <close> = py.enter(sem)
          inside = inside + 1
          if inside > max then max = inside end
          py.await(ns.later(nil, 0.001))
          inside = inside - 1
        end)
      end
      for i = 1, 6 do tasks[i]:await{timeout = 10} end
      assert.are.equal(2, max)
      assert.is_false(sem:locked())
    end)
  end)

  it("asyncio.Condition: a Lua task waits, a Python coroutine notifies", function()
    both(function()
      local cond = asyncio.Condition()
      local flag = py.list{}
      local waiter = py.spawn(function()
        return py.with(cond, function()
          py.await(cond:wait_for(function() return #flag > 0 end), {timeout = 10})
          return flag[0]
        end)
      end)
      py.start(ns.notify_after(cond, flag))
      assert.are.equal("set", waiter:await{timeout = 10})
      assert.is_false(cond:locked())
    end)
  end)

  it("asyncio.Condition: a Python coroutine waits, a Lua task notifies", function()
    both(function()
      local cond = asyncio.Condition()
      local flag = py.list{}
      local waiter = py.start(ns.wait_cond(cond, flag))
      py.await(ns.later(nil), {timeout = 5})
      py.with(cond, function()
        flag:append("from lua")
        cond:notify()
      end)
      assert.are.same({"from lua"}, py.totable(waiter:await{timeout = 10}))
    end)
  end)

  it("py.onloop(asyncio.timeout, d) turns a long await into TimeoutError", function()
    both(function()
      local ok, e = pcall(py.with, py.onloop(asyncio.timeout, 0.05), function()
        py.await(ns.forever(), {timeout = 30})
      end)
      assert.is_false(ok)
      assert.are.equal("TimeoutError", e.type)
      -- a Lua-side wait in the body is cancelled too
      ok, e = pcall(py.with, py.onloop(asyncio.timeout, 0.05), function() py.sleep(30) end)
      assert.is_false(ok)
      assert.are.equal("TimeoutError", e.type)
      -- py.enter the same
      ok, e = pcall(function()
        local _ <close> = py.enter(py.onloop(asyncio.timeout, 0.05))
        py.await(ns.forever(), {timeout = 30})
      end)
      assert.is_false(ok)
      assert.are.equal("TimeoutError", e.type)
      -- not expiring: the body's result
      assert.are.equal("fine", py.with(py.onloop(asyncio.timeout, 30), function()
        return py.await(ns.later("fine"), {timeout = 5})
      end))
    end)
  end)

  it("py.onloop(asyncio.timeout, d) bounds a py.aiter loop; the generator is closed", function()
    py.exec([[
async def stuck():
    try:
        yield 1
        await asyncio.sleep(3600)
        yield 2
    finally:
        log.append("stuck closed")
]], ns)
    both(function()
      ns.log:clear()
      local got = {}
      local ok, e = pcall(py.with, py.onloop(asyncio.timeout, 0.05), function()
        for v in py.aiter(ns.stuck()) do got[#got + 1] = v end
      end)
      assert.is_false(ok)
      assert.are.equal("TimeoutError", e.type)
      assert.are.same({1}, got)
      assert.are.same({"stuck closed"}, take_log())
    end)
  end)

  it("asyncio.timeout made outside the loop fails clearly (why py.onloop is needed)", function()
    local ok = pcall(function()
      py.with(asyncio.timeout(1), function() end)
    end)
    assert.is_false(ok)
  end)

  it("open(...): the file is closed after the block", function()
    local path = os.tmpname()
    py.with(py.builtins.open(path, "w"), function(f) f:write("one\ntwo\n") end)
    local f
    local lines = {}
    do
      local fh <close>, v = py.enter(py.builtins.open(path))
      f = v
      assert.is_true(py.is(fh, v))
      for line in py.iter(fh) do lines[#lines + 1] = line end
    end
    assert.are.same({"one\n", "two\n"}, lines)
    assert.is_true(f.closed)
    os.remove(path)
  end)

  it("tempfile.TemporaryDirectory(): the path string, gone after the block", function()
    local tempfile, pos = py.import "tempfile", py.import "os"
    local path
    do
      local d <close>, p = py.enter(tempfile.TemporaryDirectory())
      assert.are.equal("string", type(p))
      assert.are.equal("userdata", type(d))
      assert.is_true(pos.path.isdir(p))
      py.with(py.builtins.open(p .. "/f.txt", "w"), function(fh) fh:write("x") end)
      path = p
    end
    assert.is_false(pos.path.exists(path))
    local p2 = py.with(tempfile.TemporaryDirectory(), function(p) return p end)
    assert.is_false(pos.path.exists(p2))
  end)
end)

describe("context manager bad input", function()
  it("refuses what is not a context manager with a clear error", function()
    for _, v in ipairs{5, "s", {}, true} do
      local ok, e = pcall(py.with, v, function() end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'with' %(context manager expected, got " .. type(v) .. "%)", e)
      ok, e = pcall(py.enter, v)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'enter' %(context manager expected", e)
    end
    local ok, e = pcall(py.with, py.eval("object()"), function() end)
    assert.is_false(ok)
    assert.matches("does not support the context manager protocol", tostring(e))
    ok, e = pcall(py.enter, py.eval("42"))
    assert.is_false(ok)
    assert.matches("context manager", tostring(e))
    ok, e = pcall(py.with, ns.CM(), 5)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'with' %(function expected, got number%)", e)
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
