# helper.py - the Python side of pyasync, run as the module "pyasync" when
# the runtime starts: LuaError, exception description, and the loop thread.
import sys
import traceback as _tb


class LuaError(Exception):
    """A Lua error raised inside a Lua function that Python called.

    ``args[0]`` is the Lua message, ``lua_traceback`` the Lua traceback.
    When it propagates back into Lua, the original Lua value is re-raised."""

    def __init__(self, message, lua_traceback="", _lua_ref=-2):
        super().__init__(message)
        self.lua_traceback = lua_traceback
        self._lua_ref = _lua_ref

    def __str__(self):
        return str(self.args[0]) if self.args else ""

    def __del__(self):
        ref, self._lua_ref = self._lua_ref, -2
        if ref >= 0:
            _unref(ref)


def _describe(exc):
    try:
        msg = str(exc)
    except BaseException:
        msg = "<exception str() failed>"
    tb = "".join(_tb.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, LuaError) and exc.lua_traceback:
        tb += "Lua " + exc.lua_traceback + "\n"
    return type(exc).__name__, msg, tb.rstrip("\n")


def _make_exc(name, msg):
    import asyncio, builtins
    cls = getattr(asyncio, name, None) or getattr(builtins, name, RuntimeError)
    return cls(msg)


def _isinstance_name(exc, name):
    return any(c.__name__ == name or c.__qualname__ == name
               for c in type(exc).__mro__)


def _pairs(obj):
    from collections.abc import Mapping
    if isinstance(obj, Mapping):
        return iter(obj.items())
    return enumerate(obj, 1)


def _prepend_path(paths):
    if isinstance(paths, str):
        paths = [paths]
    for p in reversed(list(paths)):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


# --- the loop thread ----------------------------------------------------------
# _drain, _ready and _complete are added by loop.c before the thread starts.

_loop = None
_tasks = {}        # waiter id -> Task still running, for cancellation
_eager = False


async def _wrap_awaitable(aw):
    return await aw


_wids = {}         # Task -> waiter id (no per-task closure for the GC)
# _done(task), the done callback reporting a task to its waiter, is loop.c's.


def _start(aw, ctx, wid):
    """Start aw for waiter wid; True if it already finished (reported)."""
    loop = _loop
    if _iscoroutine(aw):
        if _eager:
            # Run the task's first step now instead of a loop turn later:
            # a coroutine that never suspends completes in this batch, and
            # current_task() and contextvars stay those of a real Task.
            ready = loop._ready
            n = len(ready)
            t = loop.create_task(aw, context=ctx)
            if len(ready) == n + 1:
                try:
                    ready.pop()._run()
                finally:
                    # KeyboardInterrupt/SystemExit escape the step after
                    # being set on the task: they go to the awaiter too.
                    if t.done():
                        _complete(wid, t)
                        return True
        else:
            t = loop.create_task(aw, context=ctx)
    elif isinstance(aw, _Future):
        t = _ensure_future(aw, loop=loop)
    else:
        return _start(_wrap_awaitable(aw), ctx, wid)
    _tasks[wid] = t
    _wids[t] = wid
    t.add_done_callback(_done)
    return False


def _cancel(t):
    t.cancel()


_stopping = False


def _stop():
    global _stopping
    _stopping = True
    _loop.stop()


def _loop_main(efd, kind):
    global _loop, _eager, _iscoroutine, _Future, _ensure_future
    import asyncio
    _iscoroutine, _Future = asyncio.iscoroutine, asyncio.Future
    _ensure_future = asyncio.ensure_future
    if kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    _loop = loop
    asyncio.set_event_loop(loop)
    _eager = hasattr(loop, "_ready")
    loop.add_reader(efd, _drain)
    loop.call_soon(_ready)
    try:
        while not _stopping:
            try:
                loop.run_forever()
            except (KeyboardInterrupt, SystemExit):
                # asyncio lets these escape run_forever after setting them
                # on the task that raised them (its awaiter gets them as a
                # PyError); the loop itself must keep serving everyone else.
                pass
    finally:
        _wind_down(loop, efd)


def _wind_down(loop, efd):
    import asyncio
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.remove_reader(efd)
        asyncio.set_event_loop(None)
        loop.close()


def _aclose_bg(obj):
    """aclose() an abandoned async iterator without anyone waiting."""
    import asyncio
    close = getattr(obj, "aclose", None)
    if close is None:
        return
    t = _loop.create_task(close())
    t.add_done_callback(_report_failure)


def _report_failure(t):
    if not t.cancelled() and t.exception() is not None:
        e = t.exception()
        sys.stderr.write("pyasync: aclose() failed: %s\n" % "".join(
            _tb.format_exception(type(e), e, e.__traceback__)).rstrip())


# --- streams ------------------------------------------------------------------

class _Batch(tuple):
    """Items handed to Lua as one Lua table (converted under one GIL hold)."""
    __slots__ = ()


_EMPTY = _Batch()


class _Lazy:
    """One __anext__ per Lua step."""
    __slots__ = ("ait",)

    def __init__(self, obj):
        aiter_ = getattr(type(obj), "__aiter__", None)
        if aiter_ is None:
            raise TypeError("'%s' object is not async iterable" % type(obj).__name__)
        self.ait = aiter_(obj)
        if getattr(type(self.ait), "__anext__", None) is None:
            raise TypeError("__aiter__ of '%s' returned a '%s', which has no __anext__"
                            % (type(obj).__name__, type(self.ait).__name__))

    async def step(self):
        try:
            return _Batch((await self.ait.__anext__(),))
        except StopAsyncIteration:
            return _EMPTY

    async def aclose(self):
        close = getattr(self.ait, "aclose", None)
        if close is not None:
            await close()


class _Prefetch(_Lazy):
    """A pump task on the loop runs up to n items ahead of Lua, through a
    _Ring (src/ring.c): Lua takes the items without the GIL, one by one."""
    __slots__ = ("ring", "pump", "end")

    def __init__(self, obj, n):
        super().__init__(obj)
        self.ring = _Ring(n)
        self.pump = None
        self.end = None         # (exception or None) once the source ended

    async def start(self):
        import asyncio
        if self.pump is None:
            self.pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        import asyncio
        loop = asyncio.get_running_loop()
        ring = self.ring
        push, wait_room = ring.push, ring.wait_room
        nxt = self.ait.__anext__
        try:
            while True:
                if not push(await nxt()):
                    # full: the generator runs on once Lua has taken half
                    while wait_room(fut := loop.create_future()):
                        await fut
        except StopAsyncIteration:
            self.end = (None,)
        except asyncio.CancelledError:
            self.end = (None,)
            raise
        except BaseException as e:
            self.end = (e,)
        finally:
            ring.finish(self.end[0] if self.end else None)

    async def aclose(self):
        import asyncio
        p = self.pump
        if p is not None and not p.done():
            before = self.end
            p.cancel()
            try:
                await p
            except asyncio.CancelledError:
                if not p.done():
                    raise       # this aclose() itself was cancelled
            # the pump was inside __anext__: an error the generator raised
            # while being cancelled (a failing finally) is aclose()'s error
            if self.end is not before and self.end[0] is not None:
                raise self.end[0]
        await _Lazy.aclose(self)


def _aiter(obj, prefetch=None):
    if prefetch:
        return _Prefetch(obj, prefetch)
    return _Lazy(obj)


# --- the Queue bridge -----------------------------------------------------------

def _queue_class():
    import asyncio

    class QueueShutDown(Exception):
        """Raised by a closed pyasync Queue: put after close, get once drained."""

    class Queue(asyncio.Queue):
        """asyncio.Queue with close(): getters drain what is left, then the end."""
        _closed = False

        def close(self):
            self._closed = True
            for waiters in (self._getters, self._putters):
                while waiters:
                    w = waiters.popleft()
                    if not w.done():
                        w.set_result(None)

        @property
        def closed(self):
            return self._closed

        async def put(self, item):
            while self.full():
                if self._closed:
                    raise QueueShutDown("put on a closed queue")
                putter = self._get_loop().create_future()
                self._putters.append(putter)
                try:
                    await putter
                except BaseException:
                    putter.cancel()
                    try:
                        self._putters.remove(putter)
                    except ValueError:
                        pass
                    if not self.full() and not putter.cancelled():
                        self._wakeup_next(self._putters)
                    raise
            return self.put_nowait(item)

        def put_nowait(self, item):
            if self._closed:
                raise QueueShutDown("put on a closed queue")
            return super().put_nowait(item)

        async def get(self):
            while self.empty():
                if self._closed:
                    raise QueueShutDown("queue closed and drained")
                getter = self._get_loop().create_future()
                self._getters.append(getter)
                try:
                    await getter
                except BaseException:
                    getter.cancel()
                    try:
                        self._getters.remove(getter)
                    except ValueError:
                        pass
                    if not self.empty() and not getter.cancelled():
                        self._wakeup_next(self._getters)
                    raise
            return self.get_nowait()

        def get_nowait(self):
            if self.empty() and self._closed:
                raise QueueShutDown("queue closed and drained")
            return super().get_nowait()

    return Queue, QueueShutDown


Queue, QueueShutDown = _queue_class()


async def _q_put_nowait(q, v):
    q.put_nowait(v)


async def _q_get_nowait(q):
    return q.get_nowait()


async def _q_close(q):
    q.close()


async def _q_get_or_end(q):
    """For q:get() and q:items(): an empty _Batch once closed and drained."""
    try:
        return _Batch((await q.get(),))
    except QueueShutDown:
        return _EMPTY


# --- Python awaiting Lua --------------------------------------------------------

_lua_waits = {}
_lua_next = 0


def _async_fn(spawn, cancel, name="lua_function"):
    """An async callable: awaiting it runs a Lua task via spawn(token, args,
    kwargs) on the main thread; cancel(token) cancels that task."""
    import asyncio

    async def lua_async_function(*args, **kwargs):
        global _lua_next
        fut = asyncio.get_running_loop().create_future()
        _lua_next += 1
        token = _lua_next
        _lua_waits[token] = fut
        _post_lua(spawn, token, args, kwargs)
        try:
            return await fut
        except asyncio.CancelledError:
            if _lua_waits.pop(token, None) is not None:
                _post_lua(cancel, token)
            raise
        finally:
            _lua_waits.pop(token, None)

    lua_async_function.__qualname__ = lua_async_function.__name__ = name
    return lua_async_function


def _lua_resolve(token, ok, value):
    """Main thread -> loop (via call_soon): settle the future of token."""
    fut = _lua_waits.pop(token, None)
    if fut is None or fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _resolver(token, ok, value):
    import functools
    return functools.partial(_lua_resolve, token, ok, value)
