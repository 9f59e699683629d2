# bench/bench.py - the Python half of the benchmark suite, run in __main__
# of the process under test: the functions Lua calls and awaits, and the
# references timed inside Python (perf_counter) in the same process.
import asyncio
import concurrent.futures
import gc
import os
import statistics
import threading
import time

perf = time.perf_counter

# The references use the same kind of loop as pyasync's loop thread.
if os.environ.get("PYASYNC_LOOP") == "uvloop":
    import uvloop
    new_loop = uvloop.new_event_loop
else:
    new_loop = asyncio.new_event_loop


def add(a, b):
    return a + b


# --- trivial coroutines ---------------------------------------------------------

async def ret_now():
    return 1


async def ret_sleep0():
    await asyncio.sleep(0)
    return 1


CORO = {"now": ret_now, "sleep0": ret_sleep0}


def fresh_loop_per_call(kind, n):
    """The loop-per-call design: new loop, run_until_complete, close."""
    f = CORO[kind]
    t0 = perf()
    for _ in range(n):
        loop = new_loop()
        try:
            loop.run_until_complete(f())
        finally:
            loop.close()
    return (perf() - t0) / n


_remote = None


def _remote_loop():
    global _remote
    if _remote is None:
        loop = new_loop()
        th = threading.Thread(target=loop.run_forever, daemon=True)
        th.start()
        _remote = (loop, th)
    return _remote[0]


def threadsafe_per_call(kind, n):
    """run_coroutine_threadsafe(coro, loop).result() from this thread to a
    loop running in another thread."""
    loop, f = _remote_loop(), CORO[kind]
    t0 = perf()
    for _ in range(n):
        asyncio.run_coroutine_threadsafe(f(), loop).result()
    return (perf() - t0) / n


def stop_remote_loop():
    global _remote
    if _remote is not None:
        loop, th = _remote
        loop.call_soon_threadsafe(loop.stop)
        th.join()
        loop.close()
        _remote = None


async def gather_in_loop(kind, n):
    """asyncio.gather inside the loop; seconds for all n."""
    f = CORO[kind]
    t0 = perf()
    await asyncio.gather(*[f() for _ in range(n)])
    return perf() - t0


def gather_remote(kind, n):
    """gather_in_loop on a plain loop of the same kind in a thread of its own,
    waited for with run_coroutine_threadsafe(...).result(); its own timing."""
    return asyncio.run_coroutine_threadsafe(gather_in_loop(kind, n), _remote_loop()).result()


def _noop():
    pass


async def call_soon_cost(n):
    """n loop.call_soon(f) from a coroutine on the running loop, looked up
    each time as asyncio's C Task and Future do; seconds per call (the
    handles then run, untimed)."""
    loop = asyncio.get_running_loop()
    f = _noop
    t0 = perf()
    for _ in range(n):
        loop.call_soon(f)
    dt = perf() - t0
    await asyncio.sleep(0)
    return dt / n


def call_soon_remote(n):
    return asyncio.run_coroutine_threadsafe(call_soon_cost(n), _remote_loop()).result()


def loop_class_names(pyasync_loop):
    return "%s vs %s" % (type(pyasync_loop).__name__, type(_remote_loop()).__name__)


# --- wake-up of a coroutine waiting on an Event ------------------------------------
# Both clocks are CLOCK_MONOTONIC: time.perf_counter here, minbridge.now() in
# Lua (get_clock_info("perf_counter") says so on Linux).

class Waker:
    """A coroutine that waits on ev n times (run), noting the perf_counter
    time at which it runs again after each set, as the first thing it does."""

    def __init__(self, ev):
        self.ev, self.times = ev, []

    async def run(self, n):
        ev, times = self.ev, self.times
        for _ in range(n):
            await ev.wait()
            times.append(perf())
            ev.clear()
        return times

    def ready(self, woken):
        """The coroutine has run after woken sets and waits in ev.wait()
        again (a waiter future not done: the one just woken stays in
        _waiters, done, until the coroutine runs).  Counting matters for a
        set made through call_soon_threadsafe, which takes effect later: a
        second set made before the first ran would be lost."""
        return (len(self.times) >= woken and
                any(not f.done() for f in list(self.ev._waiters)))


def wake_latency(times, t0_ns):
    """Median of wake-up time - set time, in µs (t0_ns: minbridge.now())."""
    return statistics.median(t - t0 / 1e9 for t, t0 in zip(times, t0_ns)) * 1e6


def wake_ref(loop, n, gap):
    """The reference: this thread (a plain Python thread, here the main one)
    wakes a coroutine waiting on an Event on loop with
    loop.call_soon_threadsafe(ev.set), after the same pauses as the Lua
    side, sleeping with the GIL released.  Median latency in µs."""
    if loop is None:
        loop = _remote_loop()
    w = Waker(asyncio.Event())
    fut = asyncio.run_coroutine_threadsafe(w.run(n), loop)
    t0s = []
    for i in range(n):
        time.sleep(gap)
        while not w.ready(i):
            time.sleep(20e-6)
        t0s.append(perf())
        loop.call_soon_threadsafe(w.ev.set)
    times = fut.result(timeout=60)
    return statistics.median(t - t0 for t, t0 in zip(times, t0s)) * 1e6


# --- calls into Lua from other threads ------------------------------------------------

async def calls_in_loop(f, n):
    """n synchronous calls f(1, 2) from a coroutine on the running loop;
    seconds per call."""
    t0 = perf()
    for _ in range(n):
        f(1, 2)
    return (perf() - t0) / n


async def executor_in_loop(n):
    """The reference: n times await loop.run_in_executor(None, add, 1, 2)."""
    loop = asyncio.get_running_loop()
    t0 = perf()
    for _ in range(n):
        await loop.run_in_executor(None, add, 1, 2)
    return (perf() - t0) / n


def calls_in_thread(f, n):
    """The worker's body: n calls f(1, 2); seconds per call."""
    t0 = perf()
    for _ in range(n):
        f(1, 2)
    return (perf() - t0) / n


async def in_worker(f, n):
    """calls_in_thread(f, n) on a thread of the default executor while this
    loop (and whoever awaits this) waits."""
    return await asyncio.get_running_loop().run_in_executor(None, calls_in_thread, f, n)


def in_thread_sync(f, n):
    """calls_in_thread(f, n) on a new thread, the caller blocked in join():
    called from Lua, the main thread is inside Python meanwhile."""
    out = []
    th = threading.Thread(target=lambda: out.append(calls_in_thread(f, n)))
    th.start()
    th.join()
    return out[0]


def in_loop_sync(loop, f, n):
    """calls_in_loop(f, n) on loop, the caller blocked in .result()."""
    return asyncio.run_coroutine_threadsafe(calls_in_loop(f, n), loop).result()


def _call_into(cf, f, a, b):
    try:
        cf.set_result(f(a, b))
    except BaseException as e:
        cf.set_exception(e)


def on_loop_thread(f, loop=None):
    """A callable that runs f(a, b) on loop's thread and waits for it: what a
    Python thread does to call into a thread that owns its state (an event
    loop): call_soon_threadsafe + a concurrent.futures.Future."""
    loop = loop or _remote_loop()

    def g(a, b):
        cf = concurrent.futures.Future()
        loop.call_soon_threadsafe(_call_into, cf, f, a, b)
        return cf.result()
    return g


# --- async generators -------------------------------------------------------------

async def gen_plain(n):
    for i in range(n):
        yield i


async def gen_sleep0(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


GEN = {"plain": gen_plain, "sleep0": gen_sleep0}


def gen(kind, n):
    return GEN[kind](n)


async def afor_in_loop(kind, n):
    """async for inside the loop; seconds for all n items."""
    s = 0
    t0 = perf()
    async for v in GEN[kind](n):
        s += v
    return perf() - t0


def fresh_loop_per_step(kind, n):
    """One new loop per item: run_until_complete(agen.__anext__())."""
    agen = GEN[kind](n)
    s = 0
    t0 = perf()
    while True:
        loop = new_loop()
        try:
            s += loop.run_until_complete(agen.__anext__())
        except StopAsyncIteration:
            break
        finally:
            loop.close()
    return perf() - t0


# --- queues ------------------------------------------------------------------------

async def consume(q, n):
    s = 0
    for _ in range(n):
        s += await q.get()
    return s


async def produce(q, n):
    for i in range(n):
        await q.put(i)
    q.close()


async def queue_in_loop(n):
    """A producer and a consumer task on one loop; seconds for n items."""
    q = asyncio.Queue()
    t0 = perf()
    c = asyncio.ensure_future(consume(q, n))
    for i in range(n):
        await q.put(i)
    await c
    return perf() - t0


# --- memory ------------------------------------------------------------------------

event = None


async def make_event():
    global event
    event = asyncio.Event()


async def wait_event():
    await event.wait()
    return 1


async def set_event():
    event.set()


async def barrier():
    return len(asyncio.all_tasks())


def clear_event():
    event.clear()


def event_waiters():
    return len(event._waiters)


# bytes per coroutine in flight: tracemalloc (Python) beside Lua's own count

def traced():
    """Python's traced bytes now, after a full collection (0 if not tracing)."""
    import tracemalloc
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


_snap = None


def traced_mark():
    """Remembers a snapshot, for traced_sites()."""
    import tracemalloc
    global _snap
    gc.collect()
    _snap = tracemalloc.take_snapshot()


def traced_sites(k, top=10):
    """Bytes per coroutine by allocation site since traced_mark(): a dict
    {"file:line": bytes}, the top sites; allocations made by C code with no
    Python frame (on the main thread) are "<unknown>:0"."""
    import tracemalloc
    gc.collect()
    snap = tracemalloc.take_snapshot()
    out = {}
    for st in snap.compare_to(_snap, "lineno")[:top]:
        fr = st.traceback[0]  # a C allocation with no frame: <unknown>:0
        f = "bench.py" if fr.filename == "<exec>" else os.path.basename(fr.filename)
        if abs(st.size_diff) >= k:
            out["%s:%d" % (f, fr.lineno)] = st.size_diff / k
    return out


def traced_sites_text(k):
    return sites_text(traced_sites(k))


async def ref_inflight(k, sites=False):
    """The reference: k bare asyncio Tasks suspended on one Event, made here
    on the loop (the list holding them included); traced bytes per task, or
    with sites, traced_sites_text() (with a "total" line) and census_text()."""
    global event
    old, ev = event, asyncio.Event()
    event = ev
    if sites:
        census_mark()
        traced_mark()
    t0 = traced()
    ts = [asyncio.ensure_future(wait_event()) for _ in range(k)]
    while len(ev._waiters) < k:
        await asyncio.sleep(0)
    t1 = traced()
    if sites:
        by_site = traced_sites(k)
        objects = census_text(k)
    ev.set()
    await asyncio.gather(*ts)
    event = old
    if sites:
        return sites_text(dict(total=(t1 - t0) / k, **by_site)), objects
    return (t1 - t0) / k


def sites_text(d):
    """name<TAB>value lines, for Lua to read into a table."""
    return "".join("%s\t%.6g\n" % kv for kv in d.items())


_census = None


def _types():
    counts = {}
    for o in gc.get_objects():
        t = type(o).__name__
        counts[t] = counts.get(t, 0) + 1
    return counts


def census_mark():
    """Counts the GC-tracked objects by type, for census_text()."""
    global _census
    gc.collect()
    _census = _types()


def census_text(k):
    """Objects per coroutine since census_mark(), by type (those with at
    least one per two coroutines), as sites_text() lines."""
    gc.collect()
    now, out = _types(), {}
    for t, c in now.items():
        d = c - _census.get(t, 0)
        if abs(d) >= k // 2:
            out[t] = d / k
    return sites_text(out)


# --- buffers -----------------------------------------------------------------------

def from_dlpack_in_python(a, n):
    import numpy as np
    t0 = perf()
    for _ in range(n):
        np.from_dlpack(a)
    return (perf() - t0) / n
