-- stress_spec.lua - bounded load: many coroutines, cancel storms, abandoned
-- generators, proxy churn, errors inside batches, nested calls both ways.
-- Nothing is lost, nothing runs twice, memory stays flat.
local py = require "pyasync"
local support = require "support"

py.exec([[
import asyncio, threading
stress = {"finally": 0, "closed": 0, "started": 0}

async def st_value(i):
    return i

async def st_sleepy(i):
    await asyncio.sleep(0)
    return i

async def st_maybe_fail(i):
    if i % 3 == 0:
        await asyncio.sleep(0)
        raise ValueError("bad %d" % i)
    return i

async def st_hold(ev):
    stress["started"] += 1
    try:
        await ev.wait()
    finally:
        stress["finally"] += 1

async def st_gen(n):
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield i
    finally:
        stress["closed"] += 1

async def st_wait_for(key, n, timeout=20):
    # an event-free poll on the loop thread, bounded: the counter is bumped
    # by aclose() tasks that the loop runs in the background
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while stress[key] < n and loop.time() < end:
        await asyncio.sleep(0.001)
    return stress[key]

def st_reset():
    for k in stress: stress[k] = 0

async def st_busy(ev):
    n = 0
    while not ev.is_set():
        n += 1
        await asyncio.sleep(0)
    return n
]])

local function rss_kb()
  local f = io.open("/proc/self/statm")
  local _, res = f:read("n", "n")
  f:close()
  return res * 4
end

describe("stress", function()
  before_each(function() py.main.st_reset() end)

  it("runs 100k coroutines in waves, none lost", function()
    local total = 0
    for _ = 1, 10 do
      local list = {}
      for i = 1, 10000 do
        list[i] = (i % 2 == 0) and py.main.st_value(i) or py.main.st_sleepy(i)
      end
      local r = py.gather(list)
      assert.are.equal(10000, #r)
      for i = 1, 10000, 997 do assert.are.equal(i, r[i]) end
      for i = 1, 10000 do total = total + r[i] end
    end
    assert.are.equal(10 * (10000 * 10001 // 2), total)
    assert.is_true(support.drained())
  end)

  it("survives a cancel storm: every finally runs exactly once", function()
    local ev = py.import("asyncio").Event()
    local tasks = {}
    for i = 1, 3000 do tasks[i] = py.start(py.main.st_hold(ev)) end
    -- let them all start, then cancel every one mid-flight
    py.await(py.main.st_wait_for("started", 3000))
    for i = 1, 3000 do assert.is_true(tasks[i]:cancel()) end
    local r = py.gather(tasks, {return_exceptions = true})
    for i = 1, 3000 do assert.are.equal("CancelledError", r[i].type) end
    assert.are.equal(3000, py.main.stress["finally"])
    for i = 1, 3000 do assert.is_true(tasks[i]:cancelled()) end
  end)

  it("closes thousands of generators abandoned at random points", function()
    math.randomseed(7)
    local n = 2000
    local exhausted, started = 0, 0
    for i = 1, n do
      local it, st = py.aiter(py.main.st_gen(5), (i % 2 == 0) and {prefetch = 2} or nil)
      local steps = math.random(0, 6)
      -- a generator never started has no finally to run when closed
      if steps > 0 then started = started + 1 end
      for _ = 1, steps do
        if it(st) == nil then exhausted = exhausted + 1 break end
      end
    end
    collectgarbage()
    collectgarbage()
    -- exhausted generators closed themselves; the rest need aclose()
    local closed = py.await(py.main.st_wait_for("closed", started))
    assert.are.equal(started, closed)
    assert.is_true(exhausted > 0)
  end)

  it("churns proxies under GC pressure while the loop is busy, RSS flat", function()
    py.exec([[
import ctypes, sys
class _MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = _MI
def st_heap():
    """malloc's bytes in use (mmap'd included) and Python's live blocks."""
    m = _libc.mallinfo2()
    return (m.uordblks + m.hblkhd, sys.getallocatedblocks())
]])
    local ev = py.import("asyncio").Event()
    local busy = py.start(py.main.st_busy(ev))
    local mk = py.builtins.object
    for _ = 1, 50000 do local _ = mk() end
    collectgarbage()
    py.eval("1")
    local before, h0 = rss_kb(), py.totable(py.main.st_heap())
    for _ = 1, 300000 do local _ = mk() end
    -- a proxy found dead waits for its __gc; the next cycle frees it
    collectgarbage()
    collectgarbage()
    py.eval("1")  -- drains the deferred releases
    local after, h1 = rss_kb(), py.totable(py.main.st_heap())
    ev:set()  -- st_busy polls the flag; no waiter to wake across threads
    local n = busy:await()
    assert.is_true(n > 0)
    -- nothing kept: a leak of one proxy's object (16 B) each would be 4.8 MB
    -- of malloc or 300k Python blocks; RSS also counts pages the allocator
    -- touched and keeps, which moves with the heap's layout
    assert.is_true(h1[1] - h0[1] < 1024 * 1024, ("malloc grew %d B"):format(h1[1] - h0[1]))
    assert.is_true(h1[2] - h0[2] < 1000, ("Python blocks grew by %d"):format(h1[2] - h0[2]))
    assert.is_true(after - before < 16 * 1024, ("RSS grew %d kB"):format(after - before))
  end)

  -- Regression: a submission made just as the loop thread stopped lingering
  -- for one wrote no wake-up and sat until something else woke the loop
  -- (here: the timeout, which fails the await).  Each await is bounded.
  it("loses no wake-up over 20k sequential awaits and lazy stream steps", function()
    for i = 1, 10000 do
      assert.are.equal(i, py.await(py.main.st_sleepy(i), {timeout = 10}))
    end
    py.exec([[
async def st_agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i
]])
    local it = py.main.st_agen(10000):__aiter__()
    for i = 0, 9999 do
      assert.are.equal(i, py.await(it:__anext__(), {timeout = 10}))
    end
  end)

  it("keeps errors inside a batch isolated", function()
    local list = {}
    for i = 1, 3000 do list[i] = py.main.st_maybe_fail(i) end
    local r = py.gather(list, {return_exceptions = true})
    for i = 1, 3000 do
      if i % 3 == 0 then
        assert.are.equal("ValueError", r[i].type)
        assert.are.equal("bad " .. i, r[i].message)
      else
        assert.are.equal(i, r[i])
      end
    end
  end)

  it("nests Lua -> Python -> Lua -> Python calls from both threads", function()
    local depth_seen = {}
    local function lua_inner(x)
      depth_seen[#depth_seen + 1] = x
      return py.main.st_py_add(x, 1)
    end
    py.main.st_lua_inner = lua_inner
    py.exec([[
def st_py_add(a, b): return a + b
def st_py_outer(x): return st_lua_inner(x) * 10
async def st_async_outer(x):
    await asyncio.sleep(0)
    return [st_py_outer(x + i) for i in range(3)], threading.current_thread() is threading.main_thread()
]])
    -- main thread: Lua -> Python -> Lua -> Python
    assert.are.equal(60, py.main.st_py_outer(5))
    -- loop thread: Python (loop) -> Lua (main) -> Python (main)
    py.run(function()
      local results = {}
      for k = 1, 20 do
        results[k] = py.start(py.main.st_async_outer(k))
      end
      for k = 1, 20 do
        local r = results[k]:await()
        local t = py.totable(r)
        assert.are.same({(k + 1) * 10, (k + 2) * 10, (k + 3) * 10}, t[1])
        assert.is_false(t[2])
      end
    end)
    assert.are.equal(1 + 60, #depth_seen)
  end)
end)
