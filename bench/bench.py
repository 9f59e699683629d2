# bench/bench.py - the Python half of the benchmark suite, run in __main__
# of the process under test: the functions Lua calls and awaits, and the
# references timed inside Python (perf_counter) in the same process.
import asyncio
import os
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


# --- buffers -----------------------------------------------------------------------

def from_dlpack_in_python(a, n):
    import numpy as np
    t0 = perf()
    for _ in range(n):
        np.from_dlpack(a)
    return (perf() - t0) / n
