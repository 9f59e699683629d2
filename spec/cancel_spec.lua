-- cancel_spec.lua - cancellation (API.md section 5): CancelToken, timeouts
-- and Task:cancel(), each reaching the Python coroutine (its finally runs
-- before the Lua side sees the error).
local py = require "pyasync"
local support = require "support"

py.exec([[
import asyncio, inspect

log = []
entered = []

def reset():
    log.clear()
    entered.clear()

async def guarded(name, delay=100):
    log.append(name + " started")
    try:
        await asyncio.sleep(delay)
        return name
    finally:
        log.append(name + " finally")

async def flagging():
    entered.append(True)
    await asyncio.sleep(0)
    return 1

async def add_now(a, b):
    return a + b

async def until_logged(*entries):
    while not all(e in log for e in entries):
        await asyncio.sleep(0.001)

async def swallow():
    try:
        await asyncio.sleep(100)
    except asyncio.CancelledError:
        return "swallowed"
]])

local main = py.main

local function pylog() return py.totable(main.log) end

-- Waits until the named coroutines have started (a cancel that comes
-- before a coroutine's first step means its body never runs at all).
local function started(...)
  local names = {...}
  for i, n in ipairs(names) do names[i] = n .. " started" end
  py.await(main.until_logged(table.unpack(names)), {timeout = 30})
end

-- Sorted copy: what ran, whatever the order of cancellation.
local function sorted(t)
  local c = {table.unpack(t)}
  table.sort(c)
  return c
end

describe("CancelToken", function()
  before_each(function() main.reset() end)

  it("starts uncancelled and stays cancelled", function()
    local tok = py.CancelToken()
    assert.is_false(tok.cancelled)
    tok:cancel()
    assert.is_true(tok.cancelled)
    tok:cancel()
    assert.is_true(tok.cancelled)
  end)

  it("already cancelled: raises CancelledError without entering Python", function()
    local tok = py.CancelToken()
    tok:cancel()
    local c = main.flagging()
    local ok, e = pcall(py.await, c, {cancel = tok})
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
    assert.are.equal(0, py.eval("len(entered)"))
    -- closed, so Python will not warn that it was never awaited
    assert.are.equal("CORO_CLOSED", py.import("inspect").getcoroutinestate(c))

    ok, e = pcall(py.sleep, 10, {cancel = tok})
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)

    ok, e = pcall(py.gather, {main.flagging(), main.flagging()}, {cancel = tok})
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
    assert.are.equal(0, py.eval("len(entered)"))
  end)

  it("already cancelled: no 'never awaited' warning (and without closing there is one)", function()
    local src = [[
      local py = require "pyasync"
      py.exec("import asyncio, gc\nasync def body():\n    await asyncio.sleep(0)")
      local tok = py.CancelToken()
      tok:cancel()
      if arg[1] == "control" then
        local c = py.main.body()
        c = nil
      else
        print(pcall(py.await, py.main.body(), {cancel = tok}))
      end
      collectgarbage()
      collectgarbage()
      py.exec("gc.collect()")
      print("done")
    ]]
    local out, err, code = support.run_script(src, support.mode, "await")
    assert.are.equal(0, code, err)
    assert.matches("^false\tCancelledError", out)
    assert.falsy(err:find("never awaited", 1, true), err)
    err, code = select(2, support.run_script(src, support.mode, "control"))
    assert.are.equal(0, code, err)
    assert.truthy(err:find("never awaited", 1, true), err)
  end)

  it("cancelled mid-await: cancels the Python side, whose finally runs", function()
    local e = py.run(function()
      local tok = py.CancelToken()
      py.spawn(function() started("in a task"); tok:cancel() end)
      local ok, e = pcall(py.await, main.guarded("in a task"), {cancel = tok})
      assert.is_false(ok)
      return e
    end)
    assert.are.equal("CancelledError", e.type)
    assert.are.same({"in a task started", "in a task finally"}, pylog())
  end)

  it("cancelled mid-await outside py.run (main task, or driving the loop)", function()
    local tok = py.CancelToken()
    py.spawn(function() started("top"); tok:cancel() end)
    local ok, e = pcall(py.await, main.guarded("top"), {cancel = tok})
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
    assert.are.same({"top started", "top finally"}, pylog())
  end)

  it("cancels every wait that holds it: awaits, sleeps, gathers", function()
    local r = py.run(function()
      local tok = py.CancelToken()
      local function try(f, ...)
        local ok, e = pcall(f, ...)
        return ok and "finished" or e.type
      end
      local a = py.spawn(try, py.await, main.guarded("a"), {cancel = tok})
      local b = py.spawn(try, py.sleep, 100, {cancel = tok})
      local c = py.spawn(try, py.gather, {main.guarded("c1"), main.guarded("c2")}, {cancel = tok})
      py.sleep(0)  -- a, b and c run up to their waits
      started("a", "c1", "c2")
      tok:cancel()
      return {a:await(), b:await(), c:await()}
    end)
    assert.are.same({"CancelledError", "CancelledError", "CancelledError"}, r)
    assert.are.same(sorted({"a started", "a finally", "c1 started", "c1 finally",
                            "c2 started", "c2 finally"}), sorted(pylog()))
  end)

  it("is forgotten by waits that finished", function()
    local tok = py.CancelToken()
    assert.are.equal(3, py.await(main.add_now(1, 2), {cancel = tok}))
    tok:cancel()
    assert.are.equal(3, py.await(main.add_now(1, 2)))
  end)
end)

describe("opts.timeout", function()
  before_each(function() main.reset() end)

  it("cancels the Python side on expiry and raises TimeoutError", function()
    local ok, e = pcall(py.await, main.guarded("slow"), {timeout = 0.05})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.is_true(py.iserror(e, "TimeoutError"))
    assert.are.same({"slow started", "slow finally"}, pylog())
  end)

  it("returns the result when it comes in time", function()
    assert.are.equal(3, py.await(main.add_now(1, 2), {timeout = 5}))
    assert.are.equal("quick", py.await(main.guarded("quick", 0), {timeout = 5}))
  end)

  it("lets a coroutine that swallows the cancellation return its value", function()
    assert.are.equal("swallowed", py.await(main.swallow(), {timeout = 0.05}))
  end)

  it("applies to py.sleep, Task awaits and gathers", function()
    local ok, e = pcall(py.sleep, 100, {timeout = 0.02})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)

    local t = py.start(main.guarded("task"))
    ok, e = pcall(t.await, t, {timeout = 0.05})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.is_true(t:cancelled())  -- the task was cancelled, and has finished

    ok, e = pcall(py.gather, {main.guarded("g1"), main.guarded("g2")}, {timeout = 0.05})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.are.same(sorted({"task started", "task finally", "g1 started", "g1 finally",
                            "g2 started", "g2 finally"}), sorted(pylog()))
  end)
end)

describe("Task:cancel()", function()
  before_each(function() main.reset() end)

  it("cancels a Python task: CancelledError reaches the coroutine", function()
    local t = py.start(main.guarded("p"))
    started("p")
    assert.is_true(t:cancel())
    local ok, e = pcall(t.await, t)
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
    assert.is_true(t:done())
    assert.is_true(t:cancelled())
    assert.are.same({"p started", "p finally"}, pylog())
  end)

  it("cancels a Lua task waiting in py.await, py.sleep, or on another task", function()
    local r = py.run(function()
      local in_await = py.spawn(function() return py.await(main.guarded("awaited")) end)
      local in_sleep = py.spawn(function() py.sleep(100) end)
      local inner = py.start(main.guarded("inner python task"))
      local on_task = py.spawn(function() return inner:await() end)
      local lua_inner = py.spawn(function() return py.await(main.guarded("under a lua task")) end)
      local on_lua_task = py.spawn(function() return lua_inner:await() end)
      py.sleep(0)  -- all of them are waiting now
      started("awaited", "inner python task", "under a lua task")
      local r = {}
      for _, t in ipairs({in_await, in_sleep, on_task, on_lua_task}) do
        assert.is_true(t:cancel())
        local ok, e = pcall(t.await, t)
        r[#r + 1] = ok and "finished" or e.type
        r[#r + 1] = t:cancelled()
      end
      r[#r + 1] = inner:cancelled()
      r[#r + 1] = lua_inner:cancelled()
      return r
    end)
    assert.are.same({"CancelledError", true, "CancelledError", true, "CancelledError", true,
                     "CancelledError", true, true, true}, r)
    assert.are.same(sorted({"awaited started", "awaited finally",
                            "inner python task started", "inner python task finally",
                            "under a lua task started", "under a lua task finally"}),
                    sorted(pylog()))
  end)

  it("lets a Lua task catch the CancelledError and go on", function()
    local t, v = py.run(function()
      local t = py.spawn(function()
        local ok, e = pcall(py.sleep, 100)
        return ok and "slept" or ("caught " .. e.type)
      end)
      py.sleep(0)
      t:cancel()
      return t, t:await()
    end)
    assert.are.equal("caught CancelledError", v)
    assert.is_false(t:cancelled())
  end)

  it("finishes a Lua task that never started, without running it", function()
    local ran = false
    local t = py.run(function()
      local t = py.spawn(function() ran = true end)
      assert.is_true(t:cancel())
      return t
    end)
    assert.is_false(ran)
    assert.is_true(t:done())
    assert.is_true(t:cancelled())
    local ok, e = pcall(t.result, t)
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
  end)

  it("delivers a cancel that comes after the task's wait completed at its next wait", function()
    local log, victim = py.run(function()
      local log = {}
      local victim
      local killer = py.spawn(function()
        py.sleep(0)
        log[#log + 1] = "cancel -> " .. tostring(victim:cancel())
      end)
      victim = py.spawn(function()
        local ok = pcall(py.sleep, 0)  -- its timer fires with the killer's
        log[#log + 1] = ok and "victim slept" or "victim cancelled at once"
        local ok2, e = pcall(py.sleep, 100)
        log[#log + 1] = ok2 and "victim slept again" or ("victim got " .. e.type)
      end)
      killer:await()
      victim:await()
      return log, victim
    end)
    assert.are.same({"cancel -> true", "victim slept", "victim got CancelledError"}, log)
    assert.is_false(victim:cancelled())  -- it caught the CancelledError
  end)

  it("ends cancelled a task whose cancel found no wait to fail", function()
    local log, victim = py.run(function()
      local log = {}
      local victim
      local killer = py.spawn(function()
        py.sleep(0)
        victim:cancel()
      end)
      victim = py.spawn(function()
        py.sleep(0)
        log[#log + 1] = "victim finished its work"
        return "result"
      end)
      killer:await()
      local ok, e = pcall(victim.await, victim)
      log[#log + 1] = ok and "not cancelled" or e.type
      return log, victim
    end)
    assert.are.same({"victim finished its work", "CancelledError"}, log)
    assert.is_true(victim:cancelled())
  end)

  it("ends cancelled a task that cancels itself and returns", function()
    local t
    local ok, e = pcall(py.run, function()
      t = py.spawn(function()
        assert(t:cancel())
        return "the result is dropped"
      end)
      return t:await()
    end)
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
    assert.is_true(t:cancelled())
  end)

  it("returns false for a finished task, without error", function()
    local p = py.start(main.add_now(1, 2))
    assert.are.equal(3, p:await())
    assert.is_false(p:cancel())
    assert.is_false(p:cancelled())
    assert.are.equal(3, p:result())
    local l = py.run(function()
      local l = py.spawn(function() return "lua" end)
      l:await()
      return l
    end)
    assert.is_false(l:cancel())
    assert.is_false(l:cancelled())
    assert.are.equal("lua", l:result())
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
