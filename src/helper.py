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


# --- loop affinity ------------------------------------------------------------
# pyasync's loop is the current loop of the Lua side (API.md section 5, "Loop
# affinity"): the policy returns it to code that the main thread (or a thread
# running a Lua call) runs, and the loop's class makes the scheduling calls
# that code makes thread-safe.  Its call_soon, call_later, call_at and the
# add/remove_reader/writer methods are C (affinity.c): the base class's on the
# loop thread, the _foreign_* functions below on any other.

def _foreign_call_soon(loop, callback, *args, context=None):
    if _wake_loop is None:      # uvloop: its call_soon_threadsafe is C
        return loop.call_soon_threadsafe(callback, *args, context=context)
    # asyncio's call_soon_threadsafe writes to a socket, which releases the
    # GIL: the loop thread would run in the middle of the caller's own
    # Python (Event.set() iterating its waiters while one of them leaves)
    loop._check_closed()
    h = loop._call_soon(callback, args, context)
    _wake_loop()
    return h


def _foreign_call_later(loop, delay, callback, *args, context=None):
    return _foreign_call_at(loop, loop.time() + delay, callback, *args, context=context)


def _foreign_call_at(loop, when, callback, *args, context=None):
    h = _ForeignTimer(when, callback, args, loop, context)
    _foreign_call_soon(loop, h._arm)
    return h


def _foreign_add_reader(loop, fd, callback, *args):
    _foreign_call_soon(loop, loop.add_reader, fd, callback, *args)


def _foreign_add_writer(loop, fd, callback, *args):
    _foreign_call_soon(loop, loop.add_writer, fd, callback, *args)


def _foreign_remove_reader(loop, fd):
    """Scheduled on the loop thread; True since it cannot tell yet."""
    _foreign_call_soon(loop, loop.remove_reader, fd)
    return True


def _foreign_remove_writer(loop, fd):
    _foreign_call_soon(loop, loop.remove_writer, fd)
    return True


_ForeignTimer = None


def _timer_class():
    import asyncio

    class ForeignTimer(asyncio.TimerHandle):
        """The handle of call_at/call_later called from another thread: the
        loop thread arms the loop's own timer, whose callback runs this one."""
        __slots__ = ("_real",)

        def __init__(self, when, callback, args, loop, context=None):
            super().__init__(when, callback, args, loop, context)
            self._real = None

        def _arm(self):
            if not self._cancelled:
                self._real = self._loop.call_at(self._when, self._fire)

        def _fire(self):
            self._real = None
            if not self._cancelled:
                self._run()

        def cancel(self):
            if self._cancelled:
                return
            asyncio.Handle.cancel(self)
            real, self._real = self._real, None
            if real is not None:
                if _on_loop_thread():
                    real.cancel()
                else:
                    _foreign_call_soon(self._loop, real.cancel)

    return ForeignTimer


def _on_loop_thread():
    import threading
    return _loop is not None and threading.get_ident() == _loop_ident


_loop_ident = None
_wake_loop = None        # loop.c's, on asyncio's loop


def _loop_class(kind):
    """The class of pyasync's loop: asyncio's selector loop or uvloop's."""
    if kind == "uvloop":
        import uvloop
        base = uvloop.Loop
    else:
        import asyncio
        base = asyncio.SelectorEventLoop

    class Loop(base):
        """pyasync's loop: scheduling calls made from other threads (a sync
        call from Lua) are handed to the loop thread and wake it."""

    Loop.__name__ = Loop.__qualname__ = "PyasyncLoop"
    _install_affinity(Loop, base)
    return Loop


def _policy_get_event_loop(self):
    if _on_lua_side():
        loop = self._local._loop
        if loop is None or loop.is_closed():
            return _lua_loop()
        return loop
    return self._pyasync_base.get_event_loop(self)


def _install_policy(asyncio):
    """Makes pyasync's loop the current loop of the Lua side: a subclass of
    the policy in place whose get_event_loop() returns it there, unless code
    there set a loop of its own that is still open."""
    cur = asyncio.get_event_loop_policy()
    cls = type(cur)
    if getattr(cls, "_pyasync_base", None) is not None:
        return
    if not hasattr(cur, "_local"):
        return  # not a BaseDefaultEventLoopPolicy: leave it alone
    policy = type("PyasyncPolicy", (cls,), {
        "get_event_loop": _policy_get_event_loop, "_pyasync_base": cls})()
    asyncio.set_event_loop_policy(policy)


class _AsyncioHook:
    """A meta path finder that installs the policy once asyncio is imported
    (pyasync does not import asyncio before it is needed)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "asyncio":
            return None
        import importlib.util
        try:
            sys.meta_path.remove(_AsyncioHook)
        except ValueError:
            pass
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_and_install(module):
                exec_module(module)
                _install_policy(module)
            spec.loader.exec_module = exec_and_install
        return spec


def _setup():
    if "asyncio" in sys.modules:
        _install_policy(sys.modules["asyncio"])
    elif _AsyncioHook not in sys.meta_path:
        sys.meta_path.insert(0, _AsyncioHook)


async def _onloop_run(fn, args, kwargs):
    return fn(*args, **kwargs)


def _onloop(fn, *args, **kwargs):
    """py.onloop(fn, ...): fn(...) inside the running loop."""
    if not callable(fn):
        raise TypeError("py.onloop: '%s' object is not callable" % type(fn).__name__)
    return _onloop_run(fn, args, kwargs)


# --- the loop thread ----------------------------------------------------------
# _drain, _ready and _complete are added by loop.c before the thread starts.

_loop = None
_tasks = {}        # waiter id -> Task still running, for cancellation
_eager = False


async def _wrap_awaitable(aw):
    return await aw


_wids = {}         # Task -> waiter id (no per-task closure for the GC)
_cb_ctx = None     # the one Context the done callbacks run in
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
    elif isinstance(aw, _CFuture):
        t = _wrap_future(aw, loop=loop)
    else:
        return _start(_wrap_awaitable(aw), ctx, wid)
    _tasks[wid] = t
    _wids[t] = wid
    t.add_done_callback(_done, context=_cb_ctx)
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
    global _CFuture, _wrap_future, _ForeignTimer, _loop_ident, _wake_loop
    import asyncio
    import concurrent.futures
    import threading
    _iscoroutine, _Future = asyncio.iscoroutine, asyncio.Future
    _ensure_future, _wrap_future = asyncio.ensure_future, asyncio.wrap_future
    _CFuture = concurrent.futures.Future
    global _cb_ctx
    import contextvars
    _cb_ctx = contextvars.Context()
    _ForeignTimer = _timer_class()
    _set_loop_thread()
    _loop_ident = threading.get_ident()
    loop = _loop_class(kind)()
    if kind == "uvloop":
        _wake_loop = None
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


def _report_failure(t, what="aclose()"):
    if not t.cancelled() and t.exception() is not None:
        e = t.exception()
        sys.stderr.write("pyasync: %s failed: %s\n" % (what, "".join(
            _tb.format_exception(type(e), e, e.__traceback__)).rstrip()))


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


def _q_try_put(q, item):
    """Lua's q:put without waiting: False if the queue is full (the caller
    then awaits put); QueueShutDown once closed."""
    if q.full():
        return False
    q.put_nowait(item)
    return True


def _q_try_get(q):
    """Lua's q:get without waiting: the item as a one-item _Batch, the empty
    _Batch once closed and drained, or False while empty."""
    if q._queue:
        return _Batch((q.get_nowait(),))
    return _EMPTY if q._closed else False


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
        loop = asyncio.get_running_loop()
        if loop is not _loop:
            # the Lua task would run on the main thread, which is inside
            # this loop (asyncio.run from Lua) or busy elsewhere: it never could
            raise RuntimeError("a py.async_fn function can only be awaited on pyasync's "
                               "loop (py.loop), not on %r" % (loop,))
        fut = loop.create_future()
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


# --- context managers (py.with, py.enter) ----------------------------------------
# The exits return "ok", "suppressed" or "propagate" (the body's error goes
# on, and Lua re-raises its own value); an exception an exit raises itself
# replaces the body's, as in Python.  As in Python, the exit runs while the
# body's exception is being handled: it is sys.exc_info(), the __context__
# of what the exit raises, and it has a traceback (a LuaError made in Lua
# gets this frame's).

def _raised(exc):
    """Raises exc for an except clause, keeping a traceback it already had."""
    tb = exc.__traceback__
    try:
        raise exc
    finally:
        if tb is not None:
            exc.__traceback__ = tb

def _is_async_cm(cm):
    return hasattr(type(cm), "__aenter__")


class _SyncWith:
    """py.with / py.enter of a context manager: entered now, on the caller's
    thread (the main thread)."""
    __slots__ = ("cm", "_exit", "value")

    def __init__(self, cm):
        t = type(cm)
        enter, self._exit = getattr(t, "__enter__", None), getattr(t, "__exit__", None)
        if enter is None or self._exit is None:
            raise TypeError("'%s' object does not support the context manager protocol"
                            % t.__name__)
        self.cm = cm
        self.value = enter(cm)

    def exit(self, exc):
        cm, self.cm = self.cm, None
        if exc is None:
            self._exit(cm, None, None, None)
            return "ok"
        try:
            try:
                _raised(exc)
            except BaseException:
                suppress = self._exit(cm, type(exc), exc, exc.__traceback__)
        except BaseException as e:
            if e is exc:
                return "propagate"
            raise
        return "suppressed" if suppress else "propagate"


class _AsyncWith:
    """py.with / py.enter of an async context manager.  A task on the loop
    runs the manager from __aenter__ to __aexit__ and awaits, in between, a
    future that the Lua body resolves with its error (or None): the manager
    sees one task throughout, as in `async with`, and a cancellation of that
    task (asyncio.timeout's) cancels the Lua body through cancel_body."""
    __slots__ = ("entered", "body", "task", "value", "__weakref__")

    def __init__(self, cm, cancel_body):
        t = type(cm)
        aenter, aexit = getattr(t, "__aenter__", None), getattr(t, "__aexit__", None)
        if aenter is None or aexit is None:
            raise TypeError("'%s' object does not support the asynchronous context "
                            "manager protocol" % t.__name__)
        loop = _loop
        self.value = None
        self.entered = loop.create_future()
        self.body = loop.create_future()
        self.task = loop.create_task(self._run(cm, aenter, aexit, cancel_body))
        self.entered.add_done_callback(self._given_up)

    async def _run(self, cm, aenter, aexit, cancel_body):
        import asyncio
        try:
            value = await aenter(cm)
        except BaseException as e:
            if not self.entered.done():
                self.entered.set_exception(e)
            return None
        if self.entered.done():     # the enter was given up: exit at once
            self.body.set_result(asyncio.CancelledError())
        else:
            self.value = value
            self.entered.set_result(None)
        asked = False
        while not self.body.done():
            try:
                await asyncio.shield(self.body)
            except asyncio.CancelledError:
                # this task was cancelled (asyncio.timeout): so is the Lua
                # body, and the manager exits once that has ended
                if not self.body.done() and not asked:
                    asked = True
                    _post_lua(cancel_body)
        exc = self.body.result()
        if exc is None:
            await aexit(cm, None, None, None)
            return "ok"
        try:
            try:
                _raised(exc)
            except BaseException:
                suppress = await aexit(cm, type(exc), exc, exc.__traceback__)
        except BaseException as e:
            if e is exc:
                return "propagate"
            raise
        return "suppressed" if suppress else "propagate"

    # Lua awaits `entered`, then `task`, and hands the body's outcome over
    # with a synchronous call in between: a wait cancelled before the loop
    # ran anything of it (a task cancelled at that moment) loses nothing.

    def _given_up(self, fut):
        """entered's done callback: a cancelled wait for __aenter__ cancels
        it (a done entered cannot be cancelled: _run then exits at once)."""
        if fut.cancelled():
            self.task.cancel()

    def finish(self, exc):
        """The body ended (exc: its exception, or None): the manager exits;
        Lua awaits task for the outcome."""
        if not self.body.done():
            self.body.set_result(exc)

    def finish_nowait(self, exc):
        """For a scope that cannot wait: the manager exits in the background."""
        self.finish(exc)
        self.task.add_done_callback(lambda t: _report_failure(t, "a context's exit"))

    async def unwound(self):
        """After a cancelled enter: until the manager has unwound."""
        import asyncio
        await asyncio.wait([self.task])


# --- introspection (py.tasks) ------------------------------------------------------

def _python_tasks():
    """The loop's unfinished tasks, as dicts for py.tasks()."""
    import asyncio
    import io
    loop = _loop
    if loop is None or loop.is_closed():
        return []
    current = asyncio.current_task(loop)
    out = []
    for t in list(asyncio.all_tasks(loop)):
        buf = io.StringIO()
        try:
            t.print_stack(file=buf)
        except Exception as e:    # a frame that cannot be formatted
            buf.write("<stack unavailable: %s>" % e)
        coro = t.get_coro()
        out.append({"name": t.get_name(),
                    "coro": getattr(coro, "__qualname__", type(coro).__name__),
                    "state": "running" if t is current else "waiting",
                    "traceback": buf.getvalue().rstrip("\n")})
    out.sort(key=lambda d: d["name"])
    return out
