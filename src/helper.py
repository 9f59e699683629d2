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
    tb = "".join(_tb.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, LuaError) and exc.lua_traceback:
        tb += "Lua " + exc.lua_traceback + "\n"
    return type(exc).__name__, str(exc), tb.rstrip("\n")


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


def _done(wid, fut):
    _tasks.pop(wid, None)
    _complete(wid, fut)


def _start(aw, ctx, wid):
    """Start aw for waiter wid; True if it already finished (reported)."""
    import asyncio
    loop = _loop
    if asyncio.iscoroutine(aw):
        if _eager:
            # Run the task's first step now instead of a loop turn later:
            # a coroutine that never suspends completes in this batch, and
            # current_task() and contextvars stay those of a real Task.
            ready = loop._ready
            n = len(ready)
            t = loop.create_task(aw, context=ctx)
            if len(ready) == n + 1:
                ready.pop()._run()
                if t.done():
                    _complete(wid, t)
                    return True
        else:
            t = loop.create_task(aw, context=ctx)
    elif isinstance(aw, asyncio.Future):
        t = asyncio.ensure_future(aw, loop=loop)
    else:
        t = loop.create_task(_wrap_awaitable(aw), context=ctx)
    _tasks[wid] = t
    t.add_done_callback(lambda f, wid=wid: _done(wid, f))
    return False


def _cancel(t):
    t.cancel()


def _stop():
    _loop.stop()


def _loop_main(efd, kind):
    global _loop, _eager
    import asyncio
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
        loop.run_forever()
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
