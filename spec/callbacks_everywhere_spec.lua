-- callbacks_everywhere_spec.lua - one Lua function called by Python from
-- everywhere at once: 1,000 times from each of 8 threading.Threads and
-- 1,000 times from a coroutine on the loop thread, while 50 Lua tasks wait
-- in py.sleep / asyncio.sleep loops.  Every call is answered exactly once
-- with its own return value, nothing deadlocks (every wait is bounded), and
-- the totals are exact.  Then the same while the main thread is blocked in a
-- synchronous Python call that joins those threads (API.md section 6: Lua
-- called from any Python thread never deadlocks).
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

local ns = py.eval("{}")
py.exec([[
import asyncio, threading, time

def double(x):
    return 2 * x

class Callers:
    """n threads calling fn(name, i) k times each, and a coroutine on the
    loop doing the same; each checks every answer."""

    def __init__(self, fn, n, k):
        self.fn, self.k = fn, k
        self.bad = []          # wrong answers and exceptions, as strings
        self.answers = {}      # caller name -> answers received
        self.threads = [threading.Thread(target=self._thread, args=("t%d" % j,),
                                         name="caller-%d" % j, daemon=True)
                        for j in range(1, n + 1)]
        self._lock = threading.Lock()
        self._left = n
        self.loop = asyncio.get_event_loop()   # pyasync's (loop affinity)
        self.done = self.loop.create_future()  # set once every thread ended

    def _call(self, name, i):
        try:
            r = self.fn(name, i)
        except BaseException as e:
            self.bad.append("%s/%d raised %r" % (name, i, e))
            return
        if r != (name, i, 2 * i):
            self.bad.append("%s/%d got %r" % (name, i, r))
        self.answers[name] = self.answers.get(name, 0) + 1

    def _thread(self, name):
        try:
            for i in range(1, self.k + 1):
                self._call(name, i)
        finally:
            with self._lock:
                self._left -= 1
                last = self._left == 0
            if last:
                self.loop.call_soon_threadsafe(self._finish)

    def _finish(self):
        if not self.done.done():
            self.done.set_result(True)

    def start(self):
        for t in self.threads:
            t.start()

    async def from_loop(self, name="loop"):
        for i in range(1, self.k + 1):
            self._call(name, i)
            if i % 10 == 0:
                await asyncio.sleep(0)

    def join(self, timeout):
        """Blocks the calling thread until every thread ended, at most
        timeout seconds; the threads still alive."""
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return sum(t.is_alive() for t in self.threads)

    def alive(self):
        return sum(t.is_alive() for t in self.threads)
]], ns)

local asyncio = py.import "asyncio"
local THREADS, K, WAITERS = 8, 1000, 50
local BOUND = 120  -- seconds for each case: a deadlock fails, never blocks ctest

-- The Lua function every caller calls: counts per caller, and checks that
-- no call with the same (caller, i) comes twice.  It makes a Python call
-- itself (nested: Lua -> Python from whatever thread runs it).  `inside`
-- brackets pure Lua code only: two threads must never run Lua at the same
-- time.  (Inside the nested Python call Python may switch threads, and
-- another thread may then run Lua: an interleaving, by design, not counted.)
local function counter()
  local calls, seen, dup, inside, overlap = {}, {}, {}, false, 0
  local function fn(name, i)
    if inside then overlap = overlap + 1 end
    inside = true
    calls[name] = (calls[name] or 0) + 1
    local key = name .. "/" .. i
    if seen[key] then dup[#dup + 1] = key end
    seen[key] = true
    local s = 0
    for k = 1, 200 do s = s + k end  -- widens the window
    if inside ~= true or s ~= 20100 then overlap = overlap + 1 end
    inside = false
    local d = ns.double(i)
    return py.tuple(name, i, d)
  end
  return fn, calls, dup, function() return overlap end
end

-- 50 Lua tasks waiting in loops until stop[1] is set; returns the tasks and
-- their iteration counts.
local function waiters(stop)
  local tasks, ticks = {}, {}
  for j = 1, WAITERS do
    ticks[j] = 0
    tasks[j] = py.spawn(function()
      while not stop[1] do
        if j % 2 == 0 then py.sleep(0.001) else py.await(asyncio.sleep(0.001)) end
        ticks[j] = ticks[j] + 1
      end
    end)
  end
  return tasks, ticks
end

local function check(c, calls, dup, overlap, names)
  assert.are.same({}, py.totable(c.bad))
  assert.are.same({}, dup)
  assert.are.equal(0, overlap, "Lua ran on two threads at once")
  local total = 0
  for _, name in ipairs(names) do
    assert.are.equal(K, calls[name], "calls from " .. name)
    assert.are.equal(K, c.answers[name], "answers received by " .. name)
    total = total + calls[name]
  end
  local all = 0
  for _, n in pairs(calls) do all = all + n end
  assert.are.equal(#names * K, total)
  assert.are.equal(total, all)
end

local function thread_names()
  local names = {}
  for j = 1, THREADS do names[j] = "t" .. j end
  return names
end

describe("a Lua function called from 8 threads and the loop thread", function()
  it("while 50 Lua tasks wait: every call answered once, totals exact", function()
    local fn, calls, dup, overlap = counter()
    local c, ticks
    py.run(function()
      local stop = {false}
      local tasks
      tasks, ticks = waiters(stop)
      c = ns.Callers(fn, THREADS, K)
      c:start()
      local from_loop = py.start(c:from_loop())
      local ok, e = pcall(py.await, c.done, {timeout = BOUND})
      assert.is_true(ok, "threads did not finish: " .. tostring(e))
      from_loop:await{timeout = BOUND}
      assert.are.equal(0, c:join(BOUND))
      stop[1] = true
      py.gather(tasks, {timeout = BOUND})
    end)
    local names = thread_names()
    names[#names + 1] = "loop"
    check(c, calls, dup, overlap(), names)
    for j = 1, WAITERS do assert.is_true(ticks[j] > 0, "waiter " .. j .. " never woke") end
  end)

  it("while the main thread is blocked joining them in a synchronous call", function()
    local fn, calls, dup, overlap = counter()
    local c, alive
    py.run(function()
      local stop = {false}
      local tasks = waiters(stop)
      c = ns.Callers(fn, THREADS, K)
      -- the loop-thread caller starts first, then the threads; the main
      -- thread blocks in c:join (Python, the GIL released in join) until all
      -- threads ended: their calls, and the loop's, run Lua on their own
      -- threads meanwhile
      local from_loop = py.start(c:from_loop())
      c:start()
      alive = c:join(BOUND)
      from_loop:await{timeout = BOUND}
      stop[1] = true
      py.gather(tasks, {timeout = BOUND})
    end)
    assert.are.equal(0, alive, "threads still running after the join")
    local names = thread_names()
    names[#names + 1] = "loop"
    check(c, calls, dup, overlap(), names)
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
