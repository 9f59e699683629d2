-- taskgroup_spec.lua - running awaitables together (API.md section 5):
-- py.gather and py.taskgroup (asyncio.TaskGroup semantics).
local py = require "pyasync"
local support = require "support"

py.exec([[
import asyncio

log = []
arrived = 0
all_here = None

def reset(n=0):
    global arrived, all_here
    log.clear()
    arrived = 0
    all_here = asyncio.Event()
    all_here.n = n

async def meet(name):
    # returns only once every meeter has arrived: they must run together
    global arrived
    arrived += 1
    if arrived == all_here.n:
        all_here.set()
    await all_here.wait()
    return name

async def square(x):
    await asyncio.sleep(0)
    return x * x

async def guarded(name, delay=100):
    log.append(name + " started")
    try:
        await asyncio.sleep(delay)
        return name
    finally:
        log.append(name + " finally")

async def fails(msg):
    await asyncio.sleep(0)
    raise ValueError(msg)

async def nothing():
    await asyncio.sleep(0)

async def until_logged(*entries):
    while not all(e in log for e in entries):
        await asyncio.sleep(0.001)

async def fails_after(msg, *names):
    # fails once the named coroutines run (a cancel before a coroutine's
    # first step means its body never runs at all)
    await until_logged(*(n + " started" for n in names))
    raise ValueError(msg)
]])

local main = py.main

local function sorted(t)
  local c = {table.unpack(t)}
  table.sort(c)
  return c
end

local function pylog() return sorted(py.totable(main.log)) end

describe("py.gather", function()
  before_each(function() main.reset() end)

  it("takes varargs and gives the results in order", function()
    assert.are.same({1, 4, 9, n = 3}, py.gather(main.square(1), main.square(2), main.square(3)))
  end)

  it("takes a table, with options", function()
    local r = py.gather({main.square(4), main.square(5)}, {timeout = 10})
    assert.are.same({16, 25, n = 2}, r)
  end)

  it("runs the awaitables concurrently", function()
    main.reset(3)
    local r = py.gather({main.meet("a"), main.meet("b"), main.meet("c")}, {timeout = 10})
    assert.are.same({"a", "b", "c", n = 3}, r)
  end)

  it("mixes coroutines, Python Tasks and Lua tasks", function()
    local r = py.run(function()
      return py.gather(main.square(2), py.start(main.square(3)),
                       py.spawn(function() return py.await(main.square(4)) end))
    end)
    assert.are.same({4, 9, 16, n = 3}, r)
  end)

  it("keeps nil results in place (n counts them)", function()
    local r = py.gather(main.nothing(), main.square(2), main.nothing())
    assert.are.equal(3, r.n)
    assert.is_nil(r[1])
    assert.are.equal(4, r[2])
    assert.is_nil(r[3])
  end)

  it("gives an empty table for nothing", function()
    assert.are.same({n = 0}, py.gather())
    assert.are.same({n = 0}, py.gather({}))
  end)

  it("puts PyErrors in place with return_exceptions", function()
    local r = py.gather({main.square(2), main.fails("second"), main.square(3)},
                        {return_exceptions = true})
    assert.are.equal(3, r.n)
    assert.are.equal(4, r[1])
    assert.is_true(py.iserror(r[2], "ValueError"))
    assert.are.equal("second", r[2].message)
    assert.are.equal(9, r[3])
  end)

  it("puts a Lua task's error value in place with return_exceptions", function()
    local obj = {}
    local r = py.run(function()
      return py.gather({py.spawn(function() error(obj) end), main.square(2)},
                       {return_exceptions = true})
    end)
    assert.is_true(rawequal(obj, r[1]))
    assert.are.equal(4, r[2])
  end)

  it("raises the first error without return_exceptions, cancelling the rest", function()
    local other = py.start(main.guarded("other"))
    local ok, e = pcall(py.gather, main.fails("first"), other)
    assert.is_false(ok)
    assert.are.equal("ValueError", e.type)
    assert.are.equal("first", e.message)
    -- the cancellation reaches the other coroutine (gather does not wait for it)
    py.await(main.until_logged("other finally"), {timeout = 10})
  end)

  it("cancelled, cancels the awaitables and waits for them", function()
    local tok = py.CancelToken()
    py.spawn(function()
      py.await(main.until_logged("x started", "y started"))
      tok:cancel()
    end)
    local ok, e = pcall(py.gather, {main.guarded("x"), main.guarded("y")}, {cancel = tok})
    assert.is_false(ok)
    assert.are.equal("CancelledError", e.type)
    assert.are.same({"x finally", "x started", "y finally", "y started"}, pylog())
  end)
end)

describe("py.taskgroup", function()
  before_each(function() main.reset() end)

  it("waits for every task started in it", function()
    local ts = {}
    local r = py.taskgroup(function(tg)
      ts[1] = tg:start(main.square(2))
      ts[2] = tg:start(py.spawn(function() return py.await(main.square(3)) end))
      ts[3] = tg:spawn(function(x) py.sleep(0.01); return x end, "slept")
      assert.are.equal(py.Task, getmetatable(ts[1]))
      return "ignored"
    end)
    assert.is_nil(r)
    for _, t in ipairs(ts) do assert.is_true(t:done()) end
    assert.are.equal(4, ts[1]:result())
    assert.are.equal(9, ts[2]:result())
    assert.are.equal("slept", ts[3]:result())
  end)

  it("runs its tasks concurrently", function()
    main.reset(3)
    local ts = {}
    py.taskgroup(function(tg)
      for i, name in ipairs({"a", "b", "c"}) do ts[i] = tg:start(main.meet(name)) end
    end)
    assert.are.same({"a", "b", "c"}, {ts[1]:result(), ts[2]:result(), ts[3]:result()})
  end)

  it("on the first failure cancels the rest (their finally runs) and raises it", function()
    local ts = {}
    local ok, e = pcall(py.taskgroup, function(tg)
      ts[1] = tg:start(main.guarded("a"))
      ts[2] = tg:start(main.guarded("b"))
      ts[3] = tg:spawn(function() return py.await(main.guarded("lua child")) end)
      ts[4] = tg:start(main.fails_after("boom", "a", "b", "lua child"))
    end)
    assert.is_false(ok)
    assert.are.equal("ValueError", e.type)
    assert.are.equal("boom", e.message)
    -- the group waited for the cancelled ones: their finally has run
    assert.are.same(sorted({"a started", "a finally", "b started", "b finally",
                            "lua child started", "lua child finally"}), pylog())
    for i = 1, 3 do assert.is_true(ts[i]:cancelled()) end
    assert.is_false(ts[4]:cancelled())
  end)

  it("raises a Lua child's error value unchanged", function()
    local obj = {}
    local ok, e = pcall(py.taskgroup, function(tg)
      tg:start(main.guarded("sibling"))
      tg:spawn(function() py.await(main.until_logged("sibling started")); error(obj) end)
    end)
    assert.is_false(ok)
    assert.is_true(rawequal(obj, e))
    assert.are.same({"sibling finally", "sibling started"}, pylog())
  end)

  it("an error in its body cancels the started tasks and is raised", function()
    local ok, e = pcall(py.taskgroup, function(tg)
      tg:start(main.guarded("started before the error"))
      py.await(main.until_logged("started before the error started"))
      error("body failed", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("body failed", e)
    assert.are.same({"started before the error finally", "started before the error started"},
                    pylog())
  end)

  it("cancelled from outside, cancels its tasks and waits for them", function()
    local outer, started
    local e = py.run(function()
      outer = py.spawn(function()
        py.taskgroup(function(tg)
          started = tg:start(main.guarded("in group"))
          tg:start(main.guarded("also in group"))
        end)
      end)
      py.await(main.until_logged("in group started", "also in group started"))
      outer:cancel()  -- outer is waiting for its group now
      local _, e = pcall(outer.await, outer)
      return e
    end)
    assert.are.equal("CancelledError", e.type)
    assert.is_true(outer:cancelled())
    assert.is_true(started:cancelled())
    assert.are.same(sorted({"in group started", "in group finally",
                            "also in group started", "also in group finally"}), pylog())
  end)

  it("refuses new tasks once finished", function()
    local group
    py.taskgroup(function(tg) group = tg end)
    local c = main.square(2)
    local ok, err = pcall(group.start, group, c)
    assert.is_false(ok)
    assert.matches("task group is finished", err)
    c:close()
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
