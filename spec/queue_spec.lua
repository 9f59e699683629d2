-- queue_spec.lua - py.Queue (API.md section 6): an asyncio.Queue on the loop
-- thread shared by Lua tasks and Python coroutines, with close() and
-- items([token]).
local py = require "pyasync"
local support = require "support"

local ns = py.eval("{}")
py.exec([[
import asyncio
import pyasync

def is_queue(q):
    return isinstance(q, asyncio.Queue)

async def put_all(q, items):
    for x in items:
        await q.put(x)

async def consume(q):
    got = []
    while True:
        try:
            got.append(await q.get())
        except pyasync.QueueShutDown:
            return got

async def wait_full(q):
    while not q.full():
        await asyncio.sleep(0)

async def wait_getters(q, n):
    """Returns once n getters wait on q."""
    while len(q._getters) < n:
        await asyncio.sleep(0)

async def turns(n):
    for _ in range(n):
        await asyncio.sleep(0)
]], ns)

local function errtype(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return py.iserror(e) and e.type or tostring(e), e
end

describe("py.Queue", function()
  it("puts and gets in order; sizes", function()
    local q = py.Queue()
    assert.is_true(q:empty())
    assert.is_false(q:full())
    assert.are.equal(0, q:qsize())
    q:put("a")
    q:put(2)
    q:put_nowait(3.5)
    assert.are.equal(3, q:qsize())
    assert.is_false(q:empty())
    assert.are.equal("a", q:get())
    assert.are.equal(2, q:get_nowait())
    assert.are.equal(3.5, q:get())
    assert.is_true(q:empty())
  end)

  it("keeps None items apart from the end", function()
    local q = py.Queue()
    q:put(nil)
    q:put(1)
    q:close()
    local got = {}
    for v in q:items() do got[#got + 1] = v end
    assert.are.equal(2, #got)
    assert.is_true(got[1] == py.None)
    assert.are.equal(1, got[2])
  end)

  it("raises QueueFull and QueueEmpty", function()
    local q = py.Queue(2)
    assert.are.equal("QueueEmpty", errtype(q.get_nowait, q))
    q:put_nowait(1)
    q:put_nowait(2)
    assert.is_true(q:full())
    assert.are.equal("QueueFull", errtype(q.put_nowait, q, 3))
    assert.are.equal(2, q:qsize())
    assert.are.equal(1, q:get_nowait())
    q:put_nowait(3)
    assert.are.equal(2, q:get())
    assert.are.equal(3, q:get())
    assert.are.equal("QueueEmpty", errtype(q.get_nowait, q))
  end)

  it("get waits while empty, put waits while full", function()
    local q = py.Queue(1)
    local got
    local consumer = py.spawn(function() got = q:get() end)
    py.await(ns.wait_getters(q, 1), {timeout = 30})
    assert.is_nil(got)
    q:put("x")
    py.await(consumer)
    assert.are.equal("x", got)

    q:put(1)
    local second_put_done = false
    local producer = py.spawn(function() q:put(2); second_put_done = true end)
    py.await(ns.turns(5))
    assert.is_false(second_put_done)
    assert.are.equal(1, q:get())
    py.await(producer)
    assert.is_true(second_put_done)
    assert.are.equal(2, q:get())
  end)

  it("get with a timeout raises TimeoutError and loses nothing", function()
    local q = py.Queue()
    assert.are.equal("TimeoutError", errtype(q.get, q, {timeout = 0.01}))
    q:put(7)
    assert.are.equal(7, q:get())
    assert.are.equal(0, q:qsize())
    local tok = py.CancelToken()
    tok:cancel()
    assert.are.equal("CancelledError", errtype(q.get, q, {cancel = tok}))
  end)

  it("close: getters drain what is left, then see the end", function()
    local q = py.Queue()
    for i = 1, 3 do q:put(i) end
    q:close()
    assert.is_true(q:closed())
    assert.are.equal(1, q:get())
    local rest = {}
    for v in q:items() do rest[#rest + 1] = v end
    assert.are.same({2, 3}, rest)
    assert.is_nil(q:get())
    assert.is_nil(q:get())
    assert.are.equal("QueueShutDown", errtype(q.get_nowait, q))
    local t, e = errtype(q.put, q, 4)
    assert.are.equal("QueueShutDown", t)
    assert.matches("closed", e.message)
    assert.are.equal("QueueShutDown", errtype(q.put_nowait, q, 4))
    q:close()  -- closing twice is harmless
    assert.is_true(q:empty())
  end)

  it("close wakes waiting getters and putters", function()
    local q = py.Queue(1)
    local results = {}
    local g1 = py.spawn(function() results.g1 = q:get() or "end" end)
    local g2 = py.spawn(function()
      local n = 0
      for _ in q:items() do n = n + 1 end
      results.g2 = n
    end)
    py.await(ns.wait_getters(q, 2), {timeout = 30})
    q:close()
    py.await(g1)
    py.await(g2)
    assert.are.equal("end", results.g1)
    assert.are.equal(0, results.g2)

    local q2 = py.Queue(1)
    q2:put(1)
    local p = py.spawn(function() q2:put(2) end)
    py.await(ns.turns(5))
    q2:close()
    local ok, e = pcall(py.await, p)
    assert.is_false(ok)
    assert.are.equal("QueueShutDown", e.type)
    assert.are.equal(1, q2:get())
    assert.is_nil(q2:get())
  end)

  it("items(token) ends when the token is cancelled", function()
    local q = py.Queue()
    local tok = py.CancelToken()
    local got = {}
    local consumer = py.spawn(function()
      for v in q:items(tok) do
        got[#got + 1] = v
        if #got == 2 then tok:cancel() end
      end
      return "stopped"
    end)
    q:put("a")
    q:put("b")
    q:put("c")
    assert.are.equal("stopped", py.await(consumer))
    assert.are.same({"a", "b"}, got)
    assert.are.equal("c", q:get())  -- nothing was taken after the cancel

    -- cancelled from outside while items() waits on an empty queue
    local tok2 = py.CancelToken()
    local n = 0
    local waiting = py.spawn(function()
      for _ in q:items(tok2) do n = n + 1 end
      return "ended"
    end)
    py.await(ns.wait_getters(q, 1), {timeout = 30})
    tok2:cancel()
    assert.are.equal("ended", py.await(waiting))
    assert.are.equal(0, n)
    q:put("d")
    assert.are.equal("d", q:get())  -- the cancelled getter took nothing
    -- an already cancelled token yields nothing
    q:put("e")
    for _ in q:items(tok2) do n = n + 1 end
    assert.are.equal(0, n)
    assert.are.equal(1, q:qsize())
  end)

  it("is the asyncio.Queue when passed to Python", function()
    local q = py.Queue(5)
    assert.is_true(ns.is_queue(q))
    assert.is_true(py.eval("lambda q: isinstance(q, __import__('asyncio').Queue)")(q))
    assert.is_true(py.isinstance(q, py.import("asyncio").Queue))
    assert.is_true(py.is(q, q._obj))
    py.await(ns.put_all(q, {10, 20, 30}))
    assert.are.equal(10, q:get())
    assert.are.equal(20, q:get())
    assert.are.equal(30, q:get())
    -- a Python consumer sees what Lua puts, and the end after close
    local consumer = py.start(ns.consume(q))
    q:put("x")
    q:put("y")
    q:close()
    assert.are.same({"x", "y"}, py.totable(py.await(consumer)))
  end)

  it("applies backpressure with maxsize", function()
    local maxsize = 2
    local q = py.Queue(maxsize)
    local sent, received = 0, 0
    local producer = py.spawn(function()
      for i = 1, 20 do q:put(i); sent = sent + 1 end
      q:close()
    end)
    py.await(ns.wait_full(q), {timeout = 30})
    assert.are.equal("QueueFull", errtype(q.put_nowait, q, 0))
    for v in q:items() do
      received = received + 1
      assert.are.equal(received, v)
      assert.is_true(q:qsize() <= maxsize)
      py.await(ns.turns(3))  -- consume slowly
      assert.is_true(q:qsize() <= maxsize)
      assert.is_true(sent <= received + maxsize + 1,
                     "sent " .. sent .. " with " .. received .. " received")
    end
    py.await(producer)
    assert.are.equal(20, received)
  end)

  it("shares items between many Lua and Python producers and consumers", function()
    local q = py.Queue(4)
    local per, nprod = 50, 6
    local producers, consumers = {}, {}
    for p = 0, nprod - 1 do
      local items = {}
      for i = 1, per do items[i] = p * 1000 + i end
      if p % 2 == 0 then
        producers[#producers + 1] = py.spawn(function()
          for _, x in ipairs(items) do q:put(x) end
        end)
      else
        producers[#producers + 1] = py.start(ns.put_all(q, items))
      end
    end
    local lua_got = {}
    for c = 1, 3 do
      consumers[#consumers + 1] = py.spawn(function()
        local mine = {}
        for v in q:items() do mine[#mine + 1] = v end
        lua_got[c] = mine
      end)
    end
    local py_consumers = {py.start(ns.consume(q)), py.start(ns.consume(q))}
    py.gather(producers)
    q:close()
    py.gather(consumers)
    local seen, count, sum = {}, 0, 0
    local function take(v)
      assert.is_nil(seen[v], "duplicate " .. tostring(v))
      seen[v] = true
      count = count + 1
      sum = sum + v
    end
    for _, mine in pairs(lua_got) do for _, v in ipairs(mine) do take(v) end end
    for _, t in ipairs(py_consumers) do
      for _, v in ipairs(py.totable(py.await(t))) do take(v) end
    end
    local want = 0
    for p = 0, nprod - 1 do for i = 1, per do want = want + p * 1000 + i end end
    assert.are.equal(nprod * per, count)
    assert.are.equal(want, sum)
  end)

  -- q:put and q:get start with put_nowait / get_nowait on the main thread:
  -- what Python sees must be what it would see from a coroutine's call.
  it("puts that need no wait are in the queue, seen by Python, when put returns", function()
    local q = py.Queue(3)
    q:put(1)
    q:put(2)
    assert.are.equal(2, q._obj:qsize())
    q:put(3)
    assert.is_true(q._obj:full())
    local putter = py.spawn(function() q:put(4) end)  -- full: it waits
    py.await(ns.turns(3))
    assert.are.equal("pending", putter.state)
    assert.are.equal(3, q._obj:qsize())
    assert.are.equal(1, q:get())           -- frees a slot: the waiting put goes in
    putter:await{timeout = 10}
    assert.are.same({2, 3, 4}, {q:get(), q:get(), q:get()})
    assert.is_true(q:empty())
  end)

  it("wakes a waiting Python getter with a put that needs no wait", function()
    local q = py.Queue()
    local getter = py.start(ns.consume(q))
    py.await(ns.wait_getters(q._obj, 1), {timeout = 10})
    q:put("a")
    q:put(py.None)
    q:close()
    local got = py.await(getter, {timeout = 10})
    assert.are.equal(2, #got)
    assert.are.equal("a", got[0])
    assert.is_nil(got[1])
  end)

  it("loses and doubles nothing when Python get() races Lua get()", function()
    local q, n = py.Queue(), 400
    local py_got = py.start(ns.consume(q))
    local lua_got = {}
    local t = py.spawn(function()
      for v in q:items() do lua_got[#lua_got + 1] = v end
    end)
    for i = 1, n do
      q:put(i)
      if i % 7 == 0 then py.sleep(0) end  -- let both sides take some
    end
    q:close()
    t:await{timeout = 30}
    local seen = {}
    for _, v in ipairs(lua_got) do assert.is_nil(seen[v]); seen[v] = true end
    for _, v in ipairs(py.totable(py.await(py_got, {timeout = 30}))) do
      assert.is_nil(seen[v]); seen[v] = true
    end
    for i = 1, n do assert.is_true(seen[i], "lost " .. i) end
  end)

  it("refuses a put or get with a cancelled token even when no wait is needed", function()
    local q = py.Queue()
    local tok = py.CancelToken()
    tok:cancel()
    assert.are.equal("CancelledError", errtype(q.put, q, 1, {cancel = tok}))
    assert.is_true(q:empty())
    q:put(1)
    assert.are.equal("CancelledError", errtype(q.get, q, {cancel = tok}))
    assert.are.equal(1, q:qsize())
    assert.are.equal(1, q:get())
  end)

  it("rejects bad input and stays usable", function()
    local ok, e = pcall(py.Queue, "x")
    assert.is_false(ok)
    assert.matches("integer expected", e)
    ok, e = pcall(py.Queue, 1.5)
    assert.is_false(ok)
    assert.matches("integer expected", e)
    local q = py.Queue(1)
    q:put(1)
    assert.are.equal("QueueFull", errtype(q.put_nowait, q, 2))
    q:close()
    assert.are.equal("QueueShutDown", errtype(q.put, q, 2))
    assert.are.equal(1, q:get())
    assert.is_nil(q:get())
    local q2 = py.Queue()
    q2:put("fine")
    assert.are.equal("fine", q2:get())
    assert.matches("pyasync.Queue", tostring(q2))
    assert.is_true(support.drained())
  end)
end)
