-- bench/run.lua - the benchmarks: `run.lua [--out FILE] [--process NAME]
-- [--no-targets] section...`.  Each section measures pyasync and its reference in this one
-- process, interleaved (lib.rounds), and appends records to FILE.
-- Run by tools/bench.sh; BENCH_SCALE (default 1) scales the iteration counts.
-- A record's target is the most its ratio (pyasync median / reference median)
-- may be for PASS; the targets are issue 15's.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local py = require "pyasync"
local mb = require "minbridge"
local B = require "lib"
local now = mb.now

local sections, order = {}, {}
local scale = tonumber(os.getenv("BENCH_SCALE") or "1")
local function N(n) return math.max(1, math.floor(n * scale)) end

local function section(name, fn)
  sections[name] = fn
  order[#order + 1] = name
end

py.exec(assert(io.open(here .. "/bench.py")):read("a"))
local P = py.main
mb.init()  -- Python runs already (pyasync's): the bridge only borrows it

---------------------------------------------------------------------------
-- Sync call: pyasync proxy call vs the minimal bridge
---------------------------------------------------------------------------
section("call", function()
  local add, madd, noop = P.add, mb.func("__main__", "add"), mb.noop
  local n = N(1000000)
  local p, r, c = B.rounds({
    B.per_op(n, 1e9, function(k) for _ = 1, k do add(1, 2) end end),
    B.per_op(n, 1e9, function(k) for _ = 1, k do madd(1, 2) end end),
    B.per_op(n, 1e9, function(k) for _ = 1, k do noop(1, 2) end end),
  })
  B.record{id = "call", section = "Sync call", what = "add(1, 2) from Lua",
           unit = "ns/call", samples = p, ref = "minimal bridge (PyGILState_Ensure + vectorcall)",
           ref_samples = r, target = 1.3}
  B.record{id = "call.lua_c", section = "Sync call", what = "Lua -> C function call (floor of any bridge)",
           unit = "ns/call", samples = c}
  local m = N(200000)
  local pm, rm = B.rounds({
    B.per_op(m, 1e9, function(k) for _ = 1, k do P.add(1.5, 2) end end),
    B.per_op(m, 1e9, function(k) for _ = 1, k do madd(1.5, 2) end end),
  })
  B.record{id = "call.lookup", section = "Sync call", what = "py.main.add(1.5, 2) (lookup + call)",
           unit = "ns/call", samples = pm, ref = "minimal bridge, bound once", ref_samples = rm}
end)

---------------------------------------------------------------------------
-- Sequential await round trip
---------------------------------------------------------------------------
local function await_loop(kind)
  local f = P[kind == "now" and "ret_now" or "ret_sleep0"]
  return function(k) for _ = 1, k do py.await(f()) end end
end

section("await", function()
  for _, kind in ipairs{"now", "sleep0"} do
    local n = N(kind == "now" and 2000 or 1000)
    local what = kind == "now" and "py.await(coroutine returning at once)"
                               or "py.await(coroutine doing sleep(0))"
    local p, fresh, ts = B.rounds({
      B.per_op(n, 1e6, await_loop(kind)),
      function() return P.fresh_loop_per_call(kind, n) * 1e6 end,
      function() return P.threadsafe_per_call(kind, n) * 1e6 end,
    })
    B.record{id = "await." .. kind, section = "Sequential await", what = what,
             unit = "us/await", samples = p, ref = "fresh event loop per call",
             ref_samples = fresh, target = 0.3}
    B.record{id = "await." .. kind .. ".threadsafe", section = "Sequential await", what = what,
             unit = "us/await", samples = p, ref = "run_coroutine_threadsafe().result()",
             ref_samples = ts}
  end
  P.stop_remote_loop()
  -- the same from inside a task (the host binary's main chunk is one)
  local n = N(2000)
  local t = B.rounds({function()
    return py.run(function() return B.per_op(n, 1e6, await_loop("now"))() end)
  end})
  B.record{id = "await.now.task", section = "Sequential await",
           what = "py.await(returns at once) inside py.run", unit = "us/await", samples = t}
end)

---------------------------------------------------------------------------
-- gather of 10k trivial coroutines
---------------------------------------------------------------------------
section("gather", function()
  local n = N(10000)
  for _, kind in ipairs{"now", "sleep0"} do
    local f = P[kind == "now" and "ret_now" or "ret_sleep0"]
    local p, r = B.rounds({
      function()
        local t0 = now()
        local list = {}
        for i = 1, n do list[i] = f() end
        local res = py.gather(list)
        assert(#res == n)
        return (now() - t0) / n / 1e3
      end,
      function() return py.await(P.gather_in_loop(kind, n)) / n * 1e6 end,
    })
    B.record{id = "gather." .. kind, section = "Gather 10k",
             what = kind == "now" and "py.gather(10k returning at once)"
                                  or "py.gather(10k doing sleep(0))",
             unit = "us/coroutine", samples = p, ref = "asyncio.gather in the loop",
             ref_samples = r, target = kind == "now" and 0.55 or 0.9}
  end
end)

---------------------------------------------------------------------------
-- Loop overhead: the same gather coroutine on pyasync's loop (whose
-- call_soon, call_later and call_at are C wrappers that check the thread)
-- and on a plain loop of the same kind in a thread of its own; both time
-- themselves inside the loop.
---------------------------------------------------------------------------
section("loop", function()
  local n = N(10000)
  io.stderr:write("  (", P.loop_class_names(py.loop), ")\n")
  for _, kind in ipairs{"now", "sleep0"} do
    local p, r = B.rounds({
      function() return py.await(P.gather_in_loop(kind, n)) / n * 1e6 end,
      function() return P.gather_remote(kind, n) / n * 1e6 end,
    })
    B.record{id = "loop.gather." .. kind, section = "Loop overhead",
             what = kind == "now" and "asyncio.gather(10k returning at once) on py.loop"
                                  or "asyncio.gather(10k doing sleep(0)) on py.loop",
             unit = "us/coroutine", samples = p,
             ref = "the same on a plain loop in its own thread", ref_samples = r,
             target = 1.05}
  end
  -- the wrapper itself: loop.call_soon from a coroutine on each loop
  local m = N(20000)
  local cp, cr = B.rounds({
    function() return py.await(P.call_soon_cost(m)) * 1e9 end,
    function() return P.call_soon_remote(m) * 1e9 end,
  })
  B.record{id = "loop.call_soon", section = "Loop overhead",
           what = "loop.call_soon(f) on py.loop's thread (C wrapper)", unit = "ns/call",
           samples = cp, ref = "the same on a plain loop in its own thread", ref_samples = cr}
  P.stop_remote_loop()
end)

---------------------------------------------------------------------------
-- Wake-up: ev:set() from Lua on the main thread until the coroutine that
-- waits on ev (on pyasync's loop) runs.  Lua notes minbridge.now() right
-- before the set, the coroutine perf_counter() as soon as it runs (the same
-- clock); between wake-ups both sides sleep (GIL released) long enough for
-- the loop thread to be asleep in its selector again.  References: the
-- same wake-up made by a plain Python thread with call_soon_threadsafe, to
-- a plain loop in its own thread, and to pyasync's loop.
---------------------------------------------------------------------------
section("wakeup", function()
  local asyncio = py.import "asyncio"
  local n = N(400)
  local gap = 300000   -- ns between a wake-up and the next set
  local poll = 20000   -- ns between looks while the waiter is not back yet
  local function from_lua()
    local ev = asyncio.Event()  -- made from Lua: py.loop's, once waited on there
    local w = P.Waker(ev)
    local ready = w.ready
    local t = py.start(w:run(n))
    local t0 = {}
    for i = 1, n do
      mb.sleep(gap)
      while not ready(i - 1) do mb.sleep(poll) end
      t0[i] = now()
      ev:set()
    end
    return P.wake_latency(py.await(t, {timeout = 60}), t0)
  end
  local p, r, rl = B.rounds({
    from_lua,
    function() return P.wake_ref(nil, n, gap / 1e9) end,
    function() return P.wake_ref(py.loop, n, gap / 1e9) end,
  })
  B.record{id = "wakeup", section = "Wake-up",
           what = "ev:set() from Lua until the waiting coroutine runs", unit = "us/wake-up",
           samples = p, ref = "call_soon_threadsafe(ev.set) from a Python thread, plain loop",
           ref_samples = r, target = 1.5}
  B.record{id = "wakeup.pyloop", section = "Wake-up",
           what = "ev:set() from Lua until the waiting coroutine runs", unit = "us/wake-up",
           samples = p, ref = "call_soon_threadsafe(ev.set) from a Python thread, py.loop",
           ref_samples = rl}
  P.stop_remote_loop()
end)

---------------------------------------------------------------------------
-- Lua called from other threads: a coroutine on pyasync's loop, and a worker
-- thread, calling a Lua function synchronously while the main thread is idle
-- (waiting in py.await: the main thread runs each call), and while it is
-- inside a synchronous Python call (the calling thread runs it itself).
---------------------------------------------------------------------------
section("callback", function()
  local function ladd(a, b) return a + b end
  local n = N(5000)
  local p, r = B.rounds({
    function() return py.await(P.calls_in_loop(ladd, n)) * 1e6 end,
    function() return py.await(P.executor_in_loop(n)) * 1e6 end,
  })
  B.record{id = "callback.loop", section = "Lua called from Python threads",
           what = "coroutine on py.loop calls a Lua function (main idle)", unit = "us/call",
           samples = p, ref = "await loop.run_in_executor(None, f) in the loop",
           ref_samples = r, target = 1.0}
  local g = P.on_loop_thread(P.add)
  local w, wr = B.rounds({
    function() return py.await(P.in_worker(ladd, n)) * 1e6 end,
    function() return py.await(P.in_worker(g, n)) * 1e6 end,
  })
  B.record{id = "callback.worker", section = "Lua called from Python threads",
           what = "worker thread calls a Lua function (main idle)", unit = "us/call",
           samples = w, ref = "worker: call_soon_threadsafe(f) + Future.result(), plain loop",
           ref_samples = wr, target = 1.0}
  P.stop_remote_loop()
  -- the main thread inside Python (blocked in .result() / join()): the
  -- calling thread runs the Lua function itself, holding the GIL
  local m = N(20000)
  local bl, bw = B.rounds({
    function() return P.in_loop_sync(py.loop, ladd, m) * 1e6 end,
    function() return P.in_thread_sync(ladd, m) * 1e6 end,
  })
  B.record{id = "callback.loop.borrowed", section = "Lua called from Python threads",
           what = "coroutine on py.loop calls Lua (main inside Python)", unit = "us/call",
           samples = bl}
  B.record{id = "callback.worker.borrowed", section = "Lua called from Python threads",
           what = "worker thread calls Lua (main inside Python)", unit = "us/call",
           samples = bw}
end)

---------------------------------------------------------------------------
-- Async-generator streaming
---------------------------------------------------------------------------
local function stream(kind, n, opts)
  return function()
    local s, t0 = 0, now()
    for v in py.aiter(P.gen(kind, n), opts) do s = s + v end
    assert(s == n * (n - 1) // 2)
    return (now() - t0) / n / 1e3
  end
end

section("stream", function()
  for _, kind in ipairs{"sleep0", "plain"} do
    local label = kind == "sleep0" and "awaits between items" or "no awaits"
    local n = N(20000)
    local p, r = B.rounds({
      stream(kind, n, {prefetch = 64}),
      function() return py.await(P.afor_in_loop(kind, n)) / n * 1e6 end,
    })
    B.record{id = "stream.prefetch." .. kind, section = "Async generator",
             what = "py.aiter(prefetch=64), " .. label, unit = "us/item", samples = p,
             ref = "async for in the loop", ref_samples = r,
             target = kind == "sleep0" and 1.1 or 2.0}
    local m = N(2000)
    local lz, fr, af = B.rounds({
      stream(kind, m),
      function() return P.fresh_loop_per_step(kind, m) / m * 1e6 end,
      function() return py.await(P.afor_in_loop(kind, m)) / m * 1e6 end,
    })
    B.record{id = "stream.lazy." .. kind, section = "Async generator",
             what = "py.aiter lazy, " .. label, unit = "us/item", samples = lz,
             ref = "fresh loop per step", ref_samples = fr, target = 1.0}
    B.record{id = "stream.lazy." .. kind .. ".afor", section = "Async generator",
             what = "py.aiter lazy, " .. label, unit = "us/item", samples = lz,
             ref = "async for in the loop", ref_samples = af}
  end
end)

---------------------------------------------------------------------------
-- Queue throughput
---------------------------------------------------------------------------
section("queue", function()
  local n = N(5000)
  local lua_to_py, py_to_lua_items, py_to_lua_get, ref = B.rounds({
    function()
      local q = py.Queue()
      local t0 = now()
      local c = py.start(P.consume(q, n))
      for i = 1, n do q:put(i) end
      assert(py.await(c) == n * (n + 1) // 2)
      return (now() - t0) / n / 1e3
    end,
    function()
      local q, s = py.Queue(), 0
      local t0 = now()
      local p = py.start(P.produce(q, n))
      for v in q:items() do s = s + v end
      py.await(p)
      assert(s == n * (n - 1) // 2)
      return (now() - t0) / n / 1e3
    end,
    function()
      local q, s = py.Queue(), 0
      local t0 = now()
      local p = py.start(P.produce(q, n))
      for _ = 1, n do s = s + q:get() end
      py.await(p)
      assert(s == n * (n - 1) // 2)
      return (now() - t0) / n / 1e3
    end,
    function() return py.await(P.queue_in_loop(n)) / n * 1e6 end,
  })
  local refname = "asyncio.Queue, producer and consumer in the loop"
  B.record{id = "queue.lua_to_py", section = "Queue", what = "Lua q:put -> Python consumer",
           unit = "us/item", samples = lua_to_py, ref = refname, ref_samples = ref, target = 2.5}
  B.record{id = "queue.py_to_lua.items", section = "Queue", what = "Python producer -> Lua q:items()",
           unit = "us/item", samples = py_to_lua_items, ref = refname, ref_samples = ref,
           target = 2.5}
  B.record{id = "queue.py_to_lua.get", section = "Queue", what = "Python producer -> Lua q:get()",
           unit = "us/item", samples = py_to_lua_get, ref = refname, ref_samples = ref,
           target = 2.5}
  B.record{id = "queue.asyncio", section = "Queue", what = refname .. " (the reference alone)",
           unit = "us/item", samples = ref}
end)

---------------------------------------------------------------------------
-- Buffers and DLPack (guarded: py.buffer / py.from_dlpack may be missing)
---------------------------------------------------------------------------
local function guarded(name, fn)
  local ok, err = pcall(fn)
  if not ok then
    io.stderr:write("  skipped ", name, ": ", tostring(err), "\n")
    B.values{id = name .. ".skipped", section = name, what = name .. " skipped",
             values = {error = tostring(err)}}
  end
end

section("buffer", function() guarded("buffer", function()
  local np = py.import("numpy")
  local n = N(1000000)
  local arr = np.arange(n, py.kw{dtype = "float64"})
  local v = py.buffer(arr)
  local t = {}
  for i = 1, n do t[i] = i - 1.0 end
  local pv, pt = B.rounds({
    B.per_op(n, 1e9, function(k) local s = 0; for i = 1, k do s = s + v[i] end end),
    B.per_op(n, 1e9, function(k) local s = 0; for i = 1, k do s = s + t[i] end end),
  })
  B.record{id = "buffer.index", section = "Buffer view", what = "v[i] over a float64 numpy array",
           unit = "ns/element", samples = pv, ref = "Lua table t[i]", ref_samples = pt}
  local m = N(100000)
  local pp = B.rounds({B.per_op(m, 1e9, function(k)
    local s = 0; for i = 1, k do s = s + arr[i - 1] end end)})
  B.record{id = "buffer.proxy_index", section = "Buffer view",
           what = "arr[i] through the proxy (no view)", unit = "ns/element", samples = pp}
  v:release()
end) end)

section("dlpack", function() guarded("dlpack", function()
  local np = py.import("numpy")
  for _, size in ipairs{{"1 KB", 128, N(20000)}, {"100 MB", 13107200, N(20000)}} do
    local label, len, n = size[1], size[2], size[3]
    local arr = np.ones(len, py.kw{dtype = "float64"})
    local p, r, b = B.rounds({
      B.per_op(n, 1e6, function(k)
        for _ = 1, k do local t = py.from_dlpack(arr); t:release() end end),
      function() return P.from_dlpack_in_python(arr, n) * 1e6 end,
      B.per_op(n, 1e6, function(k)
        for _ = 1, k do local v = py.buffer(arr); v:release() end end),
    })
    local id = label == "1 KB" and "1k" or "100m"
    B.record{id = "dlpack." .. id, section = "DLPack", what = "py.from_dlpack + release, " .. label,
             unit = "us/exchange", samples = p, ref = "numpy.from_dlpack in Python",
             ref_samples = r}
    B.record{id = "buffer.open." .. id, section = "DLPack", what = "py.buffer + release, " .. label,
             unit = "us/exchange", samples = b}
    py.release(arr)
  end
end) end)

---------------------------------------------------------------------------
-- Memory
---------------------------------------------------------------------------
local ASYNCIO_100K = [[
import asyncio, gc
def rss():
    with open("/proc/self/statm") as f: return int(f.read().split()[1]) * 4096
async def w(ev): await ev.wait()
async def main():
    ev = asyncio.Event()
    gc.collect(); r0 = rss()
    ts = [asyncio.ensure_future(w(ev)) for _ in range(100000)]
    await asyncio.sleep(0)
    r1 = rss()
    ev.set(); await asyncio.gather(*ts)
    print(r0, r1)
asyncio.run(main())
]]

section("memory", function()
  local mk = py.builtins.object
  local function cycles(total, release)
    collectgarbage()
    local marks = {start = B.rss()}
    for i = 1, total do
      local o = mk()
      if release then py.release(o) end
      if i == total // 10 then collectgarbage(); marks.after_10pct = B.rss() end
    end
    collectgarbage()
    mk()  -- the next GIL acquisition drains releases deferred by __gc
    marks["end"] = B.rss()
    return marks
  end
  local n = N(1000000)
  local m1 = cycles(n, true)
  B.values{id = "memory.proxies.release", section = "Memory",
           what = n .. " proxy create + py.release cycles", unit = "bytes RSS",
           values = {start = m1.start, after_100k = m1.after_10pct, after_1m = m1["end"]}}
  local m2 = cycles(n, false)
  B.values{id = "memory.proxies.gc", section = "Memory",
           what = n .. " proxy create cycles, collected by Lua's GC", unit = "bytes RSS",
           values = {start = m2.start, after_100k = m2.after_10pct, after_1m = m2["end"]}}

  local k = N(100000)
  py.await(P.make_event())
  collectgarbage()
  local r0 = B.rss()
  B.reset_peak()
  local t0 = now()
  local ts = {}
  for i = 1, k do ts[i] = py.start(P.wait_event()) end
  py.await(P.barrier())  -- submissions run in order: all k are waiting now
  local t1 = now()
  local r1 = B.rss()
  py.await(P.set_event())
  local res = py.gather(ts)
  assert(#res == k)
  local t2 = now()
  local peak = B.peak_rss()
  ts, res = nil, nil
  collectgarbage()
  local r2 = B.rss()
  local out = io.popen("/usr/bin/python3 -c '" .. ASYNCIO_100K .. "'")
  local a0, a1 = out:read("n", "n")
  out:close()
  B.values{id = "memory.inflight", section = "Memory",
           what = k .. " coroutines in flight on one asyncio.Event", unit = "bytes",
           values = {rss_before = r0, rss_in_flight = r1, peak_rss = peak, rss_after = r2,
                     per_coroutine = (r1 - r0) / k, start_us_per_coroutine = (t1 - t0) / k / 1e3,
                     finish_us_per_coroutine = (t2 - t1) / k / 1e3,
                     asyncio_alone_per_task = a0 and (a1 - a0) / 100000 or nil}}

  -- Bytes per coroutine in flight, counted where they are allocated:
  -- tracemalloc for Python (all threads), collectgarbage("count") for Lua.
  -- The reference: bare asyncio Tasks waiting on one Event, made on the
  -- loop in this process (after the 100k above: the dicts and sets that
  -- hold tasks have grown already on both sides).  C records: a
  -- submission's pya_Sub is freed once the loop thread has started it;
  -- heap() (glibc's bytes in use, Lua's allocations included) checks that
  -- nothing else stays behind.
  local km = N(20000)
  local tracemalloc = py.import "tracemalloc"
  local function lua_bytes()
    collectgarbage(); collectgarbage()
    return collectgarbage("count") * 1024
  end
  local function body() return py.await(P.wait_event()) end
  local function inflight(kind, detail)
    P.clear_event()
    if detail then P.census_mark(); P.traced_mark() end
    local l0, p0, h0 = lua_bytes(), P.traced(), mb.heap()
    local tasks, spawned = {}, nil
    if kind == "start" then
      for i = 1, km do tasks[i] = py.start(P.wait_event()) end
    else  -- a Lua task per coroutine, each in py.await
      for i = 1, km do tasks[i] = py.spawn(body) end
      spawned = (lua_bytes() - l0) / km
    end
    while P.event_waiters() < km do py.sleep(0.001) end
    local l1, p1, h1 = lua_bytes(), P.traced(), mb.heap()
    local d = {lua = (l1 - l0) / km, python = (p1 - p0) / km, lua_spawned = spawned,
               heap_minus_lua = (h1 - h0 - (l1 - l0)) / km}
    if detail then
      d.sites = P.traced_sites_text(km)
      d.objects = P.census_text(km)
    end
    py.await(P.set_event())
    assert(#py.gather(tasks) == km)
    return d
  end
  local function lines(text, prefix, into)
    for name, v in text:gmatch("([^\t\n]+)\t([^\n]+)\n") do into[prefix .. name] = tonumber(v) end
    return into
  end
  -- without tracemalloc first: glibc's heap apart from Lua's share
  local hs, ht = inflight("start"), inflight("task")
  tracemalloc.start()
  local ps, pt, ref = B.rounds({
    function() local d = inflight("start"); return d.lua + d.python end,
    function() local d = inflight("task"); return d.lua + d.python end,
    function() return py.await(P.ref_inflight(km)) end,
  })
  B.record{id = "memory.inflight.start", section = "Memory",
           what = "coroutine in flight from Lua (py.start) on an Event", unit = "B/coroutine",
           samples = ps, ref = "bare asyncio Task on an Event", ref_samples = ref, target = 1.4}
  B.record{id = "memory.inflight.task", section = "Memory",
           what = "coroutine in flight from a Lua task (py.await) on an Event",
           unit = "B/coroutine", samples = pt, ref = "bare asyncio Task on an Event",
           ref_samples = ref}
  -- where the bytes go: one more pass each, with allocation sites
  local ds, dt = inflight("start", true), inflight("task", true)
  local r = py.await(P.ref_inflight(km, true))
  local rsites, robjects = r[0], r[1]
  tracemalloc.stop()
  B.values{id = "memory.inflight.parts", section = "Memory",
           what = km .. " coroutines in flight, bytes per coroutine by part", unit = "B/coroutine",
           values = {start_lua = ds.lua, start_python = ds.python,
                     task_lua = dt.lua, task_lua_spawned = dt.lua_spawned, task_python = dt.python,
                     start_heap_minus_lua = hs.heap_minus_lua,
                     task_heap_minus_lua = ht.heap_minus_lua}}
  B.values{id = "memory.inflight.sites", section = "Memory",
           what = km .. " coroutines in flight, Python bytes per coroutine by allocation site",
           unit = "B/coroutine",
           values = lines(rsites, "ref ", lines(dt.sites, "task ", lines(ds.sites, "start ", {})))}
  B.values{id = "memory.inflight.objects", section = "Memory",
           what = km .. " coroutines in flight, GC-tracked Python objects per coroutine",
           unit = "objects/coroutine",
           values = lines(robjects, "ref ", lines(dt.objects, "task ", lines(ds.objects, "start ", {})))}
end)

---------------------------------------------------------------------------
-- Out-of-process baseline: a persistent python3 child over pipes
---------------------------------------------------------------------------
local CHILD = [[
import os, sys
r = sys.stdin.buffer.readline
while True:
    l = r()
    if not l:
        break
    a, b = l.split()
    os.write(1, b"%d\n" % (int(a) + int(b)))
]]

section("pipe", function()
  local fifo = os.tmpname()
  os.remove(fifo)
  assert(os.execute("mkfifo " .. fifo))
  local w = assert(io.popen("/usr/bin/python3 -u -c '" .. CHILD .. "' > " .. fifo, "w"))
  local r = assert(io.open(fifo, "r"))
  w:setvbuf("no")
  local add = P.add
  local n = N(3000)
  local p, c = B.rounds({
    B.per_op(n, 1e6, function(k)
      for _ = 1, k do w:write("1 2\n"); assert(r:read("l") == "3") end end),
    B.per_op(N(100000), 1e6, function(k) for _ = 1, k do add(1, 2) end end),
  })
  w:close()
  r:close()
  os.remove(fifo)
  B.record{id = "pipe", section = "Out of process", what = "persistent python3 child, \"1 2\" -> \"3\"",
           unit = "us/call", samples = p}
  B.record{id = "pipe.vs_call", section = "Out of process", what = "pyasync add(1, 2), same run",
           unit = "us/call", samples = c, ref = "persistent python3 child over a pipe",
           ref_samples = p}
end)

---------------------------------------------------------------------------

local want, i = {}, 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--out" then B.open(arg[i + 1]); i = i + 1
  elseif a == "--process" then B.process = arg[i + 1]; i = i + 1
  elseif a == "--no-targets" then B.no_targets = true
  else want[#want + 1] = a end
  i = i + 1
end
B.process = B.process or "lua5.4"
if #want == 0 then want = order end
for _, name in ipairs(want) do
  local fn = sections[name] or error("no section " .. name)
  io.stderr:write("[", B.process, "] ", name, "\n")
  fn()
end
