-- affinity_spec.lua - loop affinity (API.md section 5): objects that Python
-- code called from Lua makes belong to pyasync's loop, and synchronous calls
-- from Lua that schedule work on it take effect at once; py.loop, py.onloop,
-- concurrent.futures, and Lua called from Python threads while the main
-- thread is blocked in Python.  Each case is one item of "what breaks
-- today" in the loop-affinity issue.
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

local asyncio = py.import "asyncio"
local cf = py.import "concurrent.futures"
local ns = py.eval("{}")
py.exec([[
import asyncio, threading

async def wait_event(ev):
    await ev.wait()
    return "woke"

async def wait_future(fut):
    return await fut

async def get_from(q):
    return await q.get()

async def later(v, d=0.01):
    await asyncio.sleep(d)
    return v

def square(x):
    return x * x

def thread_name():
    return threading.current_thread().name

async def call_lua(f, x):
    await asyncio.sleep(0)
    return f(x)

def loop_of(obj):
    return obj._loop if hasattr(obj, "_loop") else obj.get_loop()

async def current_is_running():
    return asyncio.get_event_loop() is asyncio.get_running_loop()

def make_condition_future():
    return asyncio.get_event_loop().create_future()
]], ns)

-- runs f in a task too (the host runs spec bodies in its main task; under
-- stock lua5.4 they run outside any task, driving the loop)
local function both(f)
  f()
  py.run(f)
end

describe("loop affinity: objects made from Lua", function()
  it("asyncio.get_event_loop() is py.loop on the main thread", function()
    assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
    py.await(ns.later(1), {timeout = 5})
    assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
    py.run(function()
      assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
      py.await(ns.later(1), {timeout = 5})
      assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
    end)
  end)

  it("is py.loop again after Lua ran asyncio.run", function()
    assert.is_true(asyncio.run(ns.current_is_running()))
    assert.are.equal(7, asyncio.run(ns.later(7)))
    assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
    -- and what is made now still works on pyasync's loop
    local ev = asyncio.Event()
    local t = py.start(ns.wait_event(ev))
    ev:set()
    assert.are.equal("woke", t:await{timeout = 5})
  end)

  it("an asyncio.Event made in Lua belongs to py.loop; ev:set() wakes a waiter", function()
    both(function()
      local ev = asyncio.Event()
      local t = py.start(ns.wait_event(ev))
      -- let the waiter reach ev.wait() before it is set
      py.await(ns.later(nil), {timeout = 5})
      assert.is_false(t:done())
      ev:set()
      assert.are.equal("woke", t:await{timeout = 5})
    end)
  end)

  it("ev:set() wakes a waiter awaited directly with py.await", function()
    both(function()
      local ev = asyncio.Event()
      py.spawn(function()
        py.await(ns.later(nil), {timeout = 5})
        ev:set()
      end)
      assert.are.equal("woke", py.await(ns.wait_event(ev), {timeout = 5}))
    end)
  end)

  it("fut:set_result(v) on a future made with py.loop:create_future()", function()
    both(function()
      local fut = py.loop:create_future()
      local t = py.start(ns.wait_future(fut))
      py.await(ns.later(nil), {timeout = 5})
      fut:set_result("value")
      assert.are.equal("value", t:await{timeout = 5})
    end)
  end)

  it("fut:set_result(v) on a future made by get_event_loop() in Python", function()
    local fut = ns.make_condition_future()
    assert.is_true(py.is(ns.loop_of(fut), py.loop))
    local t = py.start(ns.wait_future(fut))
    py.await(ns.later(nil), {timeout = 5})
    fut:set_result(42)
    assert.are.equal(42, t:await{timeout = 5})
  end)

  it("put_nowait on a plain asyncio.Queue wakes a getter", function()
    both(function()
      local q = asyncio.Queue()
      local t = py.start(ns.get_from(q))
      py.await(ns.later(nil), {timeout = 5})
      assert.is_false(t:done())
      q:put_nowait("item")
      assert.are.equal("item", t:await{timeout = 5})
      -- and the other way: Lua awaits q.get() of a plain queue
      q:put_nowait(3)
      assert.are.equal(3, py.await(q:get(), {timeout = 5}))
    end)
  end)

  it("py.loop:call_soon(f) and call_later run f on the loop", function()
    both(function()
      local ev = asyncio.Event()
      py.loop:call_soon(ev.set)
      py.await(ev:wait(), {timeout = 5})
      ev:clear()
      py.loop:call_later(0.01, ev.set)
      py.await(ev:wait(), {timeout = 5})
    end)
  end)

  it("py.loop:call_soon runs a Lua function", function()
    both(function()
      local ev = asyncio.Event()
      local log = {}
      py.loop:call_soon(function(x)
        log[#log + 1] = x
        ev:set()
      end, "soon")
      py.await(ev:wait(), {timeout = 5})
      ev:clear()
      py.loop:call_later(0.01, function(x)
        log[#log + 1] = x
        ev:set()
      end, "later")
      py.await(ev:wait(), {timeout = 5})
      assert.are.same({"soon", "later"}, log)
    end)
  end)

  it("a Lua callback the loop runs can use a plain asyncio.Queue and a py.Queue", function()
    both(function()
      local aq = asyncio.Queue()
      py.loop:call_soon(function() aq:put_nowait("plain") end)
      assert.are.equal("plain", py.await(aq:get(), {timeout = 5}))
      -- py.Queue's _nowait forms and close() in the same place: they either
      -- work (as asyncio.Queue's do in a Python callback) or fail without
      -- effect; never both an error and the effect
      local q = py.Queue()
      q:put("first")
      local res = {}
      local done = asyncio.Event()
      py.loop:call_soon(function()
        res.put = table.pack(pcall(q.put_nowait, q, "second"))
        res.get = table.pack(pcall(q.get_nowait, q))
        done:set()
      end)
      py.await(done:wait(), {timeout = 5})
      assert.is_true(res.put[1], tostring(res.put[2]))
      assert.is_true(res.get[1], tostring(res.get[2]))
      assert.are.equal("first", res.get[2])
      assert.are.equal(1, q:qsize())
      assert.are.equal("second", q:get{timeout = 5})
    end)
  end)

  it("asyncio.ensure_future(coro) from Lua starts it on py.loop", function()
    both(function()
      local ev = asyncio.Event()
      local task = asyncio.ensure_future(ns.wait_event(ev))
      assert.is_true(py.is(task:get_loop(), py.loop))
      ev:set()
      assert.are.equal("woke", py.await(task, {timeout = 5}))
    end)
  end)

  it("ensure_future(coro) runs without anyone awaiting it", function()
    both(function()
      local ev = asyncio.Event()
      local done = asyncio.Event()
      py.exec("async def relay(a, b):\n    await a.wait()\n    b.set()", ns)
      local task = asyncio.ensure_future(ns.relay(ev, done))
      ev:set()
      py.await(done:wait(), {timeout = 5})
      assert.is_true(task:done())
    end)
  end)

  it("asyncio.gather(asyncio.to_thread(f, 1), ...) built in Lua", function()
    both(function()
      local g = asyncio.gather(asyncio.to_thread(ns.square, 1), asyncio.to_thread(ns.square, 2),
                               asyncio.to_thread(ns.square, 3))
      assert.is_true(py.is(g:get_loop(), py.loop))
      assert.are.same({1, 4, 9}, py.totable(py.await(g, {timeout = 10})))
    end)
  end)

  it("asyncio.wait_for and asyncio.shield built in Lua", function()
    both(function()
      assert.are.equal(5, py.await(asyncio.wait_for(ns.later(5), 5), {timeout = 10}))
      assert.are.equal(6, py.await(asyncio.shield(ns.later(6)), {timeout = 10}))
    end)
  end)
end)

describe("loop affinity: what stays as in Python", function()
  it("a Python thread of its own still has no current loop", function()
    py.exec([[
def loop_in_thread():
    out = {}
    def f():
        try:
            out["loop"] = asyncio.get_event_loop()
        except RuntimeError as e:
            out["err"] = str(e)
    t = threading.Thread(target=f)
    t.start()
    t.join(10)
    return out
]], ns)
    local out = ns.loop_in_thread()
    assert.is_nil(out:get("loop"))
    assert.matches("no current event loop", out:get("err"))
  end)

  it("asyncio.set_event_loop from Lua is honoured, and None goes back to py.loop", function()
    local other = asyncio.new_event_loop()
    assert.are.equal("ruc", other:run_until_complete(ns.later("ruc")))
    assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
    asyncio.set_event_loop(other)
    assert.is_true(py.is(asyncio.get_event_loop(), other))
    asyncio.set_event_loop(py.None)
    assert.is_true(py.is(asyncio.get_event_loop(), py.loop))
    other:close()
  end)

  it("call_soon_threadsafe from a Python thread sets an Event made in Lua", function()
    py.exec([[
def set_from_thread(loop, ev):
    threading.Thread(target=lambda: loop.call_soon_threadsafe(ev.set)).start()
]], ns)
    both(function()
      local ev = asyncio.Event()
      ns.set_from_thread(py.loop, ev)
      assert.is_true(py.await(ev:wait(), {timeout = 5}))
    end)
  end)

  it("asyncio.Future() and loop.create_task from Lua", function()
    both(function()
      local f = asyncio.Future()
      assert.is_true(py.is(f:get_loop(), py.loop))
      py.loop:call_later(0.01, f.set_result, "fres")
      assert.are.equal("fres", py.await(f, {timeout = 5}))
      assert.are.equal("ct", py.await(py.loop:create_task(ns.later("ct")), {timeout = 5}))
    end)
  end)
end)

describe("concurrent.futures from Lua", function()
  it("threading.Thread(target = lua_fn) joined from Lua", function()
    both(function()
      local threading = py.import "threading"
      local hits = 0
      local th = threading.Thread(py.kw{target = function() hits = hits + 1 end})
      th:start()
      th:join(10)
      assert.is_false(th:is_alive())
      assert.are.equal(1, hits)
    end)
  end)

  it("py.loop:run_in_executor(None, lua_fn, x) awaited", function()
    both(function()
      assert.are.equal(15, py.await(py.loop:run_in_executor(py.None, function(x) return x * 3 end, 5),
                                    {timeout = 10}))
    end)
  end)

  it("py.await(executor:submit(f, x))", function()
    local ex = cf.ThreadPoolExecutor(2)
    both(function()
      assert.are.equal(49, py.await(ex:submit(ns.square, 7), {timeout = 10}))
      local name = py.await(ex:submit(ns.thread_name), {timeout = 10})
      assert.are_not.equal("MainThread", name)
    end)
    ex:shutdown()
  end)

  it("a failing submit raises its exception as a PyError", function()
    local ex = cf.ThreadPoolExecutor(1)
    local ok, e = pcall(py.await, ex:submit(py.eval("lambda: 1 // 0")), {timeout = 10})
    assert.is_false(ok)
    assert.are.equal("ZeroDivisionError", e.type)
    ex:shutdown()
  end)

  it("ThreadPoolExecutor(4):map(lua_fn, range(8)): Lua runs on one thread at a time", function()
    both(function()
      local ex = cf.ThreadPoolExecutor(4)
      local count, inside, overlap = 0, false, false
      local function f(x)
        if inside then overlap = true end
        inside = true
        local v = ns.square(x)  -- a Python call from the callback
        count = count + 1
        inside = false
        return v
      end
      local got = py.totable(py.builtins.list(ex:map(f, py.builtins.range(8))))
      ex:shutdown()
      assert.are.same({0, 1, 4, 9, 16, 25, 36, 49}, got)
      assert.are.equal(8, count)
      assert.is_false(overlap)
    end)
  end)

  it("a Lua callback run for a worker thread schedules on py.loop too", function()
    both(function()
      local ex = cf.ThreadPoolExecutor(2)
      -- while the main thread is blocked in map()
      local ev = asyncio.Event()
      local t = py.start(ns.wait_event(ev))
      py.await(ns.later(nil), {timeout = 5})
      local seen = py.totable(py.builtins.list(ex:map(function(x)
        if x == 1 then ev:set() end
        return py.is(asyncio.get_event_loop(), py.loop)
      end, py.builtins.range(2))))
      assert.are.same({true, true}, seen)
      assert.are.equal("woke", t:await{timeout = 5})
      -- while the main thread waits in py.await
      local q = asyncio.Queue()
      t = py.start(ns.get_from(q))
      py.await(ns.later(nil), {timeout = 5})
      local f = ex:submit(function() q:put_nowait("x"); return "put" end)
      assert.are.equal("put", py.await(f, {timeout = 10}))
      assert.are.equal("x", t:await{timeout = 5})
      ex:shutdown()
    end)
  end)

  it("run_coroutine_threadsafe(coro, py.loop):result(10) when coro calls Lua", function()
    both(function()
      local calls = 0
      local fut = asyncio.run_coroutine_threadsafe(ns.call_lua(function(x)
        calls = calls + 1
        return x + 1
      end, 41), py.loop)
      assert.are.equal(42, fut:result(10))
      assert.are.equal(1, calls)
    end)
  end)

  it("run_coroutine_threadsafe's future can be py.awaited too", function()
    both(function()
      local fut = asyncio.run_coroutine_threadsafe(ns.later("cf"), py.loop)
      assert.are.equal("cf", py.await(fut, {timeout = 10}))
    end)
  end)
end)

describe("py.onloop", function()
  it("returns fn's result, called on the loop thread", function()
    both(function()
      assert.are.equal(25, py.onloop(ns.square, 5))
      assert.are_not.equal("MainThread", py.onloop(ns.thread_name))
      assert.are.equal("MainThread", ns.thread_name())
    end)
  end)

  it("passes keywords with a trailing py.kw", function()
    both(function()
      local f = py.eval("lambda a, b=0, *, c=0: (a, b, c)")
      assert.are.same({1, 2, 3}, py.totable(py.onloop(f, 1, py.kw{b = 2, c = 3})))
      assert.are.same({1, 0, 4}, py.totable(py.onloop(f, 1, py.kw{c = 4})))
    end)
  end)

  it("runs inside the running loop: get_running_loop() is py.loop", function()
    both(function()
      assert.is_true(py.is(py.onloop(asyncio.get_running_loop), py.loop))
      -- a coroutine function: onloop returns the coroutine, made on the loop
      local coro = py.onloop(ns.current_is_running)
      assert.is_true(py.await(coro, {timeout = 5}))
    end)
  end)

  it("makes loop-bound objects that need a running loop (asyncio.timeout)", function()
    local cm = py.onloop(asyncio.timeout, 5)
    assert.are.equal("Timeout", py.type(cm))
  end)

  it("calls a Lua function (on the main thread, while the loop thread waits)", function()
    both(function()
      assert.are.equal(6, py.onloop(function(a, b) return a * b end, 2, 3))
    end)
  end)

  it("refuses what is not callable with a clear Lua error", function()
    local ok, e = pcall(py.onloop, 5)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'onloop' %(callable expected, got number%)", e)
    ok, e = pcall(py.onloop, {})
    assert.is_false(ok)
    assert.matches("callable expected", e)
    ok, e = pcall(py.onloop, py.eval("3"))
    assert.is_false(ok)
    assert.matches("callable expected", tostring(e))
    ok, e = pcall(py.onloop, py.eval("object()"))
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("not callable", 1, true) or tostring(e):find("callable expected", 1, true))
    assert.are.equal(4, py.onloop(ns.square, 2))
  end)

  it("a raising fn gives a PyError with its traceback", function()
    py.exec("def boom():\n    raise KeyError('gone')", ns)
    both(function()
      local ok, e = pcall(py.onloop, ns.boom)
      assert.is_false(ok)
      assert.is_true(py.iserror(e, "KeyError"))
      assert.truthy(e.traceback:find("boom", 1, true))
    end)
  end)

  it("from a Lua function the loop thread is running: an error, never a deadlock", function()
    both(function()
      local inner
      local ok, e = pcall(py.await, ns.call_lua(function()
        local iok, ie = pcall(py.onloop, ns.square, 3)
        inner = {ok = iok, err = ie}
        return "returned"
      end, nil), {timeout = 10})
      assert.is_true(ok, tostring(e))
      assert.are.equal("returned", e)
      assert.is_false(inner.ok)
      assert.matches("cannot", tostring(inner.err))
      -- and uncaught, the error comes back to the awaiter
      ok, e = pcall(py.await, ns.call_lua(function() return py.onloop(ns.square, 3) end, nil),
                    {timeout = 10})
      assert.is_false(ok)
      assert.matches("cannot", tostring(e))
    end)
  end)

  it("from a Lua function a worker thread runs: an error, never a deadlock", function()
    local ex = cf.ThreadPoolExecutor(1)
    local ok, e = pcall(function()
      return ex:submit(function() return py.onloop(ns.square, 3) end):result(10)
    end)
    ex:shutdown()
    assert.is_false(ok)
    assert.matches("cannot", tostring(e))
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
