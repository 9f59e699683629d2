-- aiter_spec.lua - py.aiter (API.md section 6, DESIGN.md invariant 8): lazy
-- and prefetched iteration of async iterables, and aclose() on every kind of
-- early exit.  In the host binary the specs run inside the main task; under
-- stock lua5.4 they run outside any task, so both paths are covered.
local py = require "pyasync"
local support = require "support"

local ns = py.eval("{}")
py.exec([[
import asyncio, threading

def new_state(with_event=False):
    st = {"produced": 0, "exit": False, "finally": False, "threads": [],
          "cancelled": False, "want": None, "blocked": asyncio.Event()}
    if with_event:
        st["event"] = asyncio.Event()
    return st

def _progress(st, i):
    st["produced"] = i
    w = st["want"]
    if w is not None and i >= w[0] and not w[1].done():
        w[1].set_result(None)

async def wait_produced(st, target):
    """Returns once the generator has produced target items."""
    if st["produced"] >= target:
        return st["produced"]
    fut = asyncio.get_running_loop().create_future()
    st["want"] = (target, fut)
    await fut
    st["want"] = None
    return st["produced"]

async def turns(n):
    """Lets the loop run n times round."""
    for _ in range(n):
        await asyncio.sleep(0)

async def gen(st, n=10, fail_at=None, finally_raises=False, none_at=None, block_at=None):
    try:
        for i in range(n):
            st["threads"].append(threading.get_ident())
            await asyncio.sleep(0)
            if i == fail_at:
                raise ValueError("bad item %d" % i)
            if i == block_at:
                st["blocked"].set()
                await asyncio.Event().wait()
            _progress(st, i + 1)
            yield None if i == none_at else i
    except GeneratorExit:
        st["exit"] = True
        raise
    except asyncio.CancelledError:
        st["cancelled"] = True
        raise
    finally:
        st["finally"] = True
        if "event" in st:
            st["event"].set()
        if finally_raises:
            raise RuntimeError("cleanup failed")

class Counter:
    """An async iterator that is not a generator; aclose() is counted."""
    def __init__(self, n):
        self.n, self.i, self.aclosed = n, 0, 0
    def __aiter__(self):
        return self
    async def __anext__(self):
        await asyncio.sleep(0)
        if self.i >= self.n:
            raise StopAsyncIteration
        self.i += 1
        return self.i
    async def aclose(self):
        self.aclosed += 1

class Bag:
    """An async iterable whose __aiter__ returns a fresh iterator."""
    def __init__(self, n):
        self.n, self.its = n, []
    def __aiter__(self):
        it = Counter(self.n)
        self.its.append(it)
        return it

class Failing:
    def __init__(self):
        self.aclosed = 0
    def __aiter__(self):
        return self
    async def __anext__(self):
        raise KeyError("nope")
    async def aclose(self):
        self.aclosed += 1

async def signal(ev):
    ev.set()
]], ns)

local MODES = {
  {name = "lazy", opts = nil},
  {name = "prefetch", opts = {prefetch = 3}},
}

-- collect(py.aiter(x)): all four values of the iterator, closing one included
local function collect(f, s, c, tbc)
  local out = {}
  for v in f, s, c, tbc do out[#out + 1] = v end
  return out
end

describe("py.aiter", function()
  describe("iterates", function()
    for _, m in ipairs(MODES) do
      it("an async generator in order (" .. m.name .. ")", function()
        local st = ns.new_state()
        assert.are.same({0, 1, 2, 3, 4}, collect(py.aiter(ns.gen(st, 5), m.opts)))
        assert.is_true(st.finally)
        assert.is_false(st.exit)
      end)

      it("a class with __aiter__/__anext__ (" .. m.name .. ")", function()
        local c = ns.Counter(4)
        assert.are.same({1, 2, 3, 4}, collect(py.aiter(c, m.opts)))
        local bag = ns.Bag(3)
        assert.are.same({1, 2, 3}, collect(py.aiter(bag, m.opts)))
        assert.are.same({1, 2, 3}, collect(py.aiter(bag, m.opts)))
        assert.are.equal(2, #bag.its)
      end)

      it("None items as py.None, not the end (" .. m.name .. ")", function()
        local st = ns.new_state()
        local got = collect(py.aiter(ns.gen(st, 4, py.kw{none_at = 1}), m.opts))
        assert.are.equal(4, #got)
        assert.are.equal(0, got[1])
        assert.is_true(got[2] == py.None)
        assert.are.equal(2, got[3])
        assert.are.equal(3, got[4])
      end)

      it("runs every step on the loop thread (" .. m.name .. ")", function()
        local st = ns.new_state()
        collect(py.aiter(ns.gen(st, 6), m.opts))
        local threads = py.totable(st.threads)
        assert.are.equal(6, #threads)
        local main = py.import("threading").get_ident()
        for i = 2, #threads do assert.are.equal(threads[1], threads[i]) end
        assert.are_not.equal(main, threads[1])
      end)

      it("raises the generator's error as a PyError (" .. m.name .. ")", function()
        local st = ns.new_state()
        local got = {}
        local ok, e = pcall(function()
          for v in py.aiter(ns.gen(st, 10, py.kw{fail_at = 2}), m.opts) do got[#got + 1] = v end
        end)
        assert.is_false(ok)
        assert.is_true(py.iserror(e, "ValueError"))
        assert.are.equal("ValueError", e.type)
        assert.are.equal("bad item 2", e.message)
        assert.are.same({0, 1}, got)
        assert.is_true(st.finally)
        -- an error from the iterator is not followed by aclose()
        local f = ns.Failing()
        ok, e = pcall(function() for _ in py.aiter(f, m.opts) do end end)
        assert.is_false(ok)
        assert.are.equal("KeyError", e.type)
        assert.are.equal(0, f.aclosed)
      end)

      it("does not aclose() an exhausted iterator (" .. m.name .. ")", function()
        local c = ns.Counter(3)
        assert.are.same({1, 2, 3}, collect(py.aiter(c, m.opts)))
        assert.are.equal(0, c.aclosed)
        local st = ns.new_state()
        collect(py.aiter(ns.gen(st, 3), m.opts))
        assert.is_false(st.exit)
        assert.is_true(st.finally)
      end)
    end

    it("lazily: one __anext__ per step", function()
      local st = ns.new_state()
      local consumed = 0
      for v in py.aiter(ns.gen(st, 8)) do
        consumed = consumed + 1
        assert.are.equal(consumed - 1, v)
        py.await(ns.turns(5))  -- the loop runs, the generator must not
        assert.are.equal(consumed, st.produced)
      end
      assert.are.equal(8, consumed)
    end)

    it("with prefetch = n: runs ahead, at most n items beyond Lua", function()
      local n = 3
      local st = ns.new_state()
      local consumed = 0
      for v in py.aiter(ns.gen(st, 30), {prefetch = n}) do
        consumed = consumed + 1
        assert.are.equal(consumed - 1, v)
        if consumed == 1 then
          -- the generator runs on while Lua does not ask for more
          assert.is_true(py.await(ns.wait_produced(st, n), {timeout = 30}) >= n)
        end
        assert.is_true(st.produced <= consumed + n + 1,
                       "produced " .. st.produced .. " after consuming " .. consumed)
        py.await(ns.turns(10))
        assert.is_true(st.produced <= consumed + n + 1,
                       "produced " .. st.produced .. " after consuming " .. consumed)
      end
      assert.are.equal(30, consumed)
    end)

    it("hands prefetched items over in batches", function()
      -- a generator that never suspends fills the buffer in one go: every
      -- item after the first comes without a round trip to the loop
      py.exec([[
async def quick(n):
    for i in range(n):
        yield i
]], ns)
      local calls, real = 0, py._core.submit
      py._core.submit = function(...) calls = calls + 1; return real(...) end
      local ok, got = pcall(collect, py.aiter(ns.quick(100), {prefetch = 50}))
      py._core.submit = real
      assert.is_true(ok, tostring(got))
      assert.are.equal(100, #got)
      assert.is_true(calls <= 10, "round trips: " .. calls)
    end)
  end)

  describe("with prefetch, through the ring between the pump and Lua", function()
    py.exec([[
import gc, weakref

class Obj:
    pass

LIVE = weakref.WeakSet()

async def values(items):
    for v in items:
        yield v

async def objs(n, st):
    try:
        for i in range(n):
            o = Obj()
            o.i = i
            LIVE.add(o)
            yield o
    finally:
        st["finally"] = True

async def gated(ev, first=()):
    for v in first:
        yield v
    await ev.wait()
    yield 1
    yield 2
]], ns)

    it("converts every kind of item as lazy mode does", function()
      local f = function() return 7 end
      local items = py.eval([=[lambda f: [1, -2**63, 2**70, 1.5, True, False, 'h\u00e9llo',
                                          b'\xff\x00', '\ud800', None, [1, 2], f]]=])(f)
      local lazy = collect(py.aiter(ns.values(items)))
      local got = collect(py.aiter(ns.values(items), {prefetch = 5}))
      assert.are.equal(12, #got)
      for i = 1, 12 do
        assert.are.equal(type(lazy[i]), type(got[i]), "item " .. i)
        if type(got[i]) == "userdata" then
          assert.are.equal(tostring(lazy[i]), tostring(got[i]), "item " .. i)
        else
          assert.are.equal(lazy[i], got[i], "item " .. i)
        end
      end
      assert.are.equal(1, got[1])
      assert.are.equal(math.mininteger, got[2])
      assert.are.equal("int", py.type(got[3]))
      assert.are.equal("1180591620717411303424", tostring(got[3]))
      assert.are.equal(1.5, got[4])
      assert.is_true(got[5] == true and got[6] == false)
      assert.are.equal("h\u{e9}llo", got[7])
      assert.are.equal("\xff\0", got[8])
      assert.are.equal("\xed\xa0\x80", got[9])  -- a lone surrogate, kept
      assert.is_true(got[10] == py.None)
      assert.are.same({1, 2}, py.totable(got[11]))
      assert.are.equal(f, got[12])  -- the Lua function itself
    end)

    it("releases the items it never handed over", function()
      local st = ns.new_state()
      for o in py.aiter(ns.objs(50, st), {prefetch = 20}) do
        if o.i == 3 then break end
      end
      assert.is_true(st.finally)
      assert.is_true(py.eval("len(LIVE)", ns) > 0)  -- Lua's and the ring's
      collectgarbage()
      collectgarbage()
      py.exec("gc.collect()", ns)
      assert.are.equal(0, py.eval("len(LIVE)", ns))
    end)

    it("runs ahead by at most 65536 items whatever n is", function()
      local st = ns.new_state()
      local sum = 0
      for v in py.aiter(ns.gen(st, 100), {prefetch = 1 << 40}) do sum = sum + v end
      assert.are.equal(4950, sum)
    end)

    it("a step that cannot wait raises, and leaves the iterator usable", function()
      py.run(function()
        local ev = py.eval("__import__('asyncio').Event()")
        local f, s = py.aiter(ns.gated(ev, {0}), {prefetch = 2})
        local function step_in_sort()  -- a task cannot yield inside table.sort
          local ok, e = pcall(table.sort, {1, 2, 3}, function() f(s); return false end)
          assert.is_false(ok)
          assert.matches("cannot await here", e)
        end
        step_in_sort()  -- the pump's start
        assert.are.equal(0, f(s))
        step_in_sort()  -- the pump waits for ev: nothing is there
        py.await(ns.signal(ev))
        assert.are.equal(1, f(s))
        assert.are.equal(2, f(s))
        assert.is_nil(f(s))
      end)
    end)

    it("refuses a second task advancing it while one waits", function()
      py.run(function()
        local ev = py.eval("__import__('asyncio').Event()")
        local f, s = py.aiter(ns.gated(ev), {prefetch = 2})
        local t = py.spawn(function() return f(s) end)
        for _ = 1, 10000 do  -- until t waits for the first item
          if s.waiting then break end
          py.await(ns.turns(1))
        end
        assert.is_true(s.waiting)
        local ok, e = pcall(f, s)
        assert.is_false(ok)
        assert.matches("already advanced by another task", e)
        py.await(ns.signal(ev))
        assert.are.equal(1, py.await(t))
        assert.are.equal(2, f(s))
        assert.is_nil(f(s))
      end)
    end)
  end)

  describe("on early exit awaits aclose() before the next statement", function()
    local function by_break(make, seen)
      for v in make() do if v == 3 then break end end
      seen.after = seen.probe()
    end
    local function by_return(make)
      for v in make() do if v == 3 then return "returned" end end
    end
    local function by_goto(make, seen)
      for v in make() do if v == 3 then goto out end end
      ::out::
      seen.after = seen.probe()
    end
    local function by_error(make)
      local ok, e = pcall(function() for v in make() do if v == 3 then error("stop here") end end end)
      assert.is_false(ok)
      assert.matches("stop here", e)
    end
    local EXITS = {{"break", by_break}, {"return", by_return}, {"goto", by_goto},
                   {"error caught by pcall", by_error}}

    local function check(m, exit)
      local st = ns.new_state()
      local seen = {probe = function() return st.finally end}
      exit(function() return py.aiter(ns.gen(st, 100), m.opts) end, seen)
      if seen.after ~= nil then assert.is_true(seen.after) end
      assert.is_true(st.finally)
      local produced = st.produced
      py.await(ns.turns(5))
      assert.are.equal(produced, st.produced)  -- nothing runs any more
      if not m.opts then assert.is_true(st.exit) end
      -- class iterators get aclose() too
      local c = ns.Counter(100)
      exit(function() return py.aiter(c, m.opts) end, {probe = function() return c.aclosed end})
      assert.are.equal(1, c.aclosed)
    end

    for _, m in ipairs(MODES) do
      for _, e in ipairs(EXITS) do
        it(e[1] .. " (" .. m.name .. ", here)", function() check(m, e[2]) end)
        it(e[1] .. " (" .. m.name .. ", in a task)", function()
          py.run(function() check(m, e[2]) end)
        end)
      end

      it("error raised by aclose() itself reaches Lua on break (" .. m.name .. ")", function()
        local st = ns.new_state()
        local ok, e = pcall(function()
          for v in py.aiter(ns.gen(st, 100, py.kw{finally_raises = true}), m.opts) do
            if v == 2 then break end
          end
        end)
        assert.is_false(ok)
        assert.is_true(py.iserror(e, "RuntimeError"), tostring(e))
        assert.are.equal("cleanup failed", e.message)
        assert.is_true(st.finally)
      end)
    end

    it("error raised while closing a prefetch pump inside __anext__ reaches Lua", function()
      local st = ns.new_state()
      local ok, e = pcall(function()
        local opts = {prefetch = 10}
        for v in py.aiter(ns.gen(st, 100, py.kw{finally_raises = true, block_at = 3}), opts) do
          if v == 2 then
            py.await(st.blocked:wait())  -- the pump now waits inside __anext__
            break
          end
        end
      end)
      assert.is_false(ok)
      assert.is_true(py.iserror(e, "RuntimeError"), tostring(e))
      assert.are.equal("cleanup failed", e.message)
      assert.is_true(st.finally)
      assert.is_true(st.cancelled)
    end)
  end)

  describe("without a for loop's close", function()
    for _, m in ipairs(MODES) do
      it("a task dying of an error closes its iterator (" .. m.name .. ")", function()
        local st = ns.new_state()
        local t = py.spawn(function()
          for v in py.aiter(ns.gen(st, 100), m.opts) do
            if v == 3 then error("task died") end
          end
        end)
        local ok, e = pcall(py.await, t)
        assert.is_false(ok)
        assert.matches("task died", e)
        assert.are.equal("failed", t.state)
        assert.is_true(st.finally)
      end)

      it("a task cancelled mid-iteration closes its iterator (" .. m.name .. ")", function()
        local st = ns.new_state()
        local reached = py.eval("__import__('asyncio').Event()")
        local t = py.spawn(function()
          for v in py.aiter(ns.gen(st, 100, py.kw{block_at = 2}), m.opts) do
            if v == 1 then py.await(ns.signal(reached)) end
          end
        end)
        py.await(reached:wait())
        py.await(ns.wait_produced(st, 2))  -- the generator is now blocked
        t:cancel()
        local ok, e = pcall(py.await, t)
        assert.is_false(ok)
        assert.are.equal("CancelledError", e.type)
        assert.is_true(t:cancelled())
        assert.is_true(st.finally)
      end)

      it("a task cancelled while its loop body waits closes its iterator (" .. m.name .. ")", function()
        local st = ns.new_state()
        local in_body = py.eval("__import__('asyncio').Event()")
        local t = py.spawn(function()
          for v in py.aiter(ns.gen(st, 100), m.opts) do
            if v == 2 then
              py.await(ns.signal(in_body))
              py.sleep(60)
            end
          end
        end)
        py.await(in_body:wait())
        t:cancel()
        local ok, e = pcall(py.await, t)
        assert.is_false(ok)
        assert.are.equal("CancelledError", e.type)
        assert.is_true(st.finally)
        if not m.opts then assert.is_true(st.exit) end
      end)

      it("a task that cancels itself and breaks still closes (" .. m.name .. ")", function()
        local st = ns.new_state(true)
        local t
        t = py.spawn(function()
          for v in py.aiter(ns.gen(st, 100), m.opts) do
            if v == 2 then t:cancel(); break end
          end
          py.sleep(60)  -- the cancel is delivered here at the latest
        end)
        local ok, e = pcall(py.await, t)
        assert.is_false(ok)
        assert.are.equal("CancelledError", e.type)
        -- the timeout only keeps a failure from hanging the suite
        py.await(st.event:wait(), {timeout = 30})
        assert.is_true(st.finally)
      end)

      it("an abandoned iterator is aclose()d when collected (" .. m.name .. ")", function()
        local st = ns.new_state(true)
        do
          local f, s = py.aiter(ns.gen(st, 100), m.opts)
          assert.are.equal(0, f(s))
        end
        collectgarbage()
        collectgarbage()
        -- the timeout only keeps a failure from hanging the suite
        py.await(st.event:wait(), {timeout = 30})
        assert.is_true(st.finally)
      end)
    end

    it("the main chunk of a script closes on break (" .. support.mode .. ")", function()
      local src = [[
local py = require "pyasync"
py.exec("import asyncio\nlog = []\nasync def g():\n    try:\n        for i in range(100):\n            await asyncio.sleep(0)\n            yield i\n    finally:\n        log.append('finally')\n")
for _, opts in ipairs({false, {prefetch = 4}}) do
  for v in py.aiter(py.main.g(), opts or nil) do if v == 3 then break end end
  io.write(#py.main.log, " ")
  local ok = pcall(function() for v in py.aiter(py.main.g(), opts or nil) do if v == 2 then error("x") end end end)
  io.write(tostring(ok), " ", #py.main.log, " ")
end
print()
]]
      local out, err, code = support.run_script(src, support.mode)
      assert.are.equal(0, code, err)
      assert.are.equal("1 false 2 3 false 4 \n", out)
    end)

    it("closes on break in a task cancelled at that moment (uvloop, no eager start)", function()
      local src = [[
local py = require "pyasync"
py.exec("import asyncio\nev = asyncio.Event()\nasync def g():\n    try:\n        for i in range(100):\n            await asyncio.sleep(0)\n            yield i\n    finally:\n        ev.set()\n")
py.run(function()
  local t
  t = py.spawn(function()
    for v in py.aiter(py.main.g()) do if v == 2 then t:cancel(); break end end
  end)
  print(pcall(py.await, t))
  print(pcall(py.await, py.main.ev:wait(), {timeout = 30}))
end)
]]
      local out, err, code = support.run_script(src, support.mode, nil, "PYASYNC_LOOP=uvloop")
      assert.are.equal(0, code, err)
      assert.matches("^false\tCancelledError.*\ntrue\ttrue\n$", out)
    end)

    it("reports an aclose() error while unwinding another error", function()
      local src = [[
local py = require "pyasync"
py.exec("async def g():\n    try:\n        for i in range(100):\n            yield i\n    finally:\n        raise RuntimeError('cleanup failed')\n")
local ok, e = pcall(function() for v in py.aiter(py.main.g()) do if v == 2 then error("body error") end end end)
print(ok, e)
]]
      local out, err, code = support.run_script(src, support.mode)
      assert.are.equal(0, code, err)
      assert.matches("false\t.*body error", out)
      assert.matches("cleanup failed", err)
    end)
  end)

  describe("rejects", function()
    it("what is not async iterable, and stays usable", function()
      local ok, e = pcall(py.aiter, py.eval("[1, 2]"))
      assert.is_false(ok)
      assert.are.equal("TypeError", e.type)
      assert.matches("not async iterable", e.message)
      ok, e = pcall(py.aiter, 42)
      assert.is_false(ok)
      assert.matches("async iterable expected, got number", e)
      ok, e = pcall(py.aiter, nil)
      assert.is_false(ok)
      assert.matches("async iterable expected, got nil", e)
      ok, e = pcall(py.aiter, {})
      assert.is_false(ok)
      assert.matches("got table", e)
      ok, e = pcall(py.aiter, ns.Counter(1), {prefetch = 0})
      assert.is_false(ok)
      assert.matches("prefetch", e)
      ok, e = pcall(py.aiter, ns.Counter(1), {prefetch = "x"})
      assert.is_false(ok)
      assert.matches("prefetch", e)
      ok, e = pcall(py.aiter, ns.Counter(1), 5)
      assert.is_false(ok)
      assert.matches("table expected", e)
      local released = ns.Counter(1)
      py.release(released)
      ok, e = pcall(py.aiter, released)
      assert.is_false(ok)
      assert.matches("released", tostring(e))
      -- __aiter__ that returns something without __anext__
      py.exec("class BadIter:\n    def __aiter__(self): return [1]\n", ns)
      ok, e = pcall(py.aiter, ns.BadIter())
      assert.is_false(ok)
      assert.are.equal("TypeError", e.type)
      assert.matches("__anext__", e.message)
      -- __anext__ that returns something not awaitable
      py.exec("class BadNext:\n    def __aiter__(self): return self\n    def __anext__(self): return 1\n", ns)
      ok, e = pcall(collect, py.aiter(ns.BadNext()))
      assert.is_false(ok)
      assert.are.equal("TypeError", e.type)
      local st = ns.new_state()
      assert.are.same({0, 1}, collect(py.aiter(ns.gen(st, 2))))
      assert.is_true(support.drained())
    end)
  end)

  it("leaves nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
