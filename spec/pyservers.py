"""Real in-process servers for the specs (no mocks).

Each ``start_*`` is a coroutine to await on the running loop (from Lua:
``py.await(pyservers.start_http())``).  It binds 127.0.0.1 on a port the
kernel picks and returns an object with ``.port``, ``.url`` and ``.uri``
(the same string) and ``async def close()``.

start_http()      aiohttp (3.8) web server:
    GET  /hello        -> "hello"
    GET  /echo?x=...   -> x
    GET  /json         -> {"ok": true, "n": 42}
    GET  /slow?d=S     -> sleeps S seconds, then "slow"
    GET  /lines?n=N    -> chunked stream "line 1\\n" .. "line N\\n"
    POST /post         -> the request body
  A handler whose client disconnects is cancelled (with
  start_http(cancel_on_disconnect=False) it runs on, aiohttp 3.8's own
  behaviour).  Counts handlers: ``started``, ``finished``, ``cancelled``,
  ``failed`` (raised anything else); ``active`` is how many are running, and
  ``await server.idle(timeout)`` waits (event driven, bounded) until none
  is, returning True, or False on timeout.

start_ws_echo()   websockets (10.4, legacy ``websockets.serve``) server:
    any path     -> echoes every message back
    /count       -> sends "1" .. "5", then closes
  Same counters and ``idle()``.
"""

import asyncio

__all__ = ["start_http", "start_ws_echo", "Counters"]


class Counters:
    """Handler bookkeeping shared by the servers."""

    def __init__(self):
        self.started = 0
        self.finished = 0
        self.cancelled = 0
        self.failed = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active(self):
        return self.started - self.finished - self.cancelled - self.failed

    async def run(self, coro_fn, *args):
        """Runs one handler, counting how it ended."""
        self.started += 1
        self._idle.clear()
        try:
            result = await coro_fn(*args)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except BaseException:
            self.failed += 1
            raise
        else:
            self.finished += 1
            return result
        finally:
            if self.active == 0:
                self._idle.set()

    async def idle(self, timeout=5.0):
        """Waits until no handler is running; False if timeout passes first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def counts(self):
        return {
            "started": self.started,
            "finished": self.finished,
            "cancelled": self.cancelled,
            "failed": self.failed,
        }


class HttpServer(Counters):
    def __init__(self):
        super().__init__()
        self.port = None
        self.url = None
        self.uri = None
        self._runner = None

    def __repr__(self):
        return "<HttpServer %s %r>" % (self.url, self.counts())

    async def close(self):
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


class _CancelOnLost(asyncio.Protocol):
    """Wraps aiohttp's protocol: when the client's connection is lost, the
    handlers running for it are cancelled (aiohttp 3.8.4 lets them run on;
    3.9 calls this handler_cancellation)."""

    def __init__(self, inner, tasks):
        self._inner = inner
        self._tasks = tasks

    def connection_made(self, transport):
        self._inner.connection_made(transport)

    def data_received(self, data):
        self._inner.data_received(data)

    def eof_received(self):
        return self._inner.eof_received()

    def pause_writing(self):
        self._inner.pause_writing()

    def resume_writing(self):
        self._inner.resume_writing()

    def connection_lost(self, exc):
        self._inner.connection_lost(exc)
        for task in list(self._tasks.get(self._inner, ())):
            task.cancel()


async def start_http(cancel_on_disconnect=True, shutdown_timeout=2.0):
    """Starts the aiohttp server (see the module doc).  With
    cancel_on_disconnect (the default) a handler whose client goes away is
    cancelled, as a real deployment with handler cancellation does.
    close() gives running handlers shutdown_timeout seconds, then cancels
    them."""
    from aiohttp import web

    srv = HttpServer()
    running = {}  # aiohttp protocol -> set of handler tasks on it

    async def hello(request):
        return web.Response(text="hello")

    async def echo(request):
        return web.Response(text=request.query.get("x", ""))

    async def json_(request):
        return web.json_response({"ok": True, "n": 42})

    async def slow(request):
        await asyncio.sleep(float(request.query.get("d", "1")))
        return web.Response(text="slow")

    async def lines(request):
        n = int(request.query.get("n", "10"))
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(1, n + 1):
            await resp.write(("line %d\n" % i).encode())
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    async def post(request):
        body = await request.read()
        return web.Response(body=body, content_type=request.content_type or "application/octet-stream")

    async def call(handler, request):
        try:
            return await handler(request)
        except ConnectionResetError:
            # a write to a connection the client closed (uvloop reports it
            # before connection_lost): the client went away, as a cancel
            transport = request.transport
            if cancel_on_disconnect and (transport is None or transport.is_closing()):
                raise asyncio.CancelledError("client disconnected") from None
            raise

    @web.middleware
    async def count(request, handler):
        tasks = running.setdefault(request.protocol, set())
        task = asyncio.current_task()
        tasks.add(task)
        try:
            return await srv.run(call, handler, request)
        finally:
            tasks.discard(task)
            if not tasks:
                running.pop(request.protocol, None)

    app = web.Application(middlewares=[count])
    app.router.add_get("/hello", hello)
    app.router.add_get("/echo", echo)
    app.router.add_get("/json", json_)
    app.router.add_get("/slow", slow)
    app.router.add_get("/lines", lines)
    app.router.add_post("/post", post)

    class Site(web.BaseSite):
        # TCPSite on 127.0.0.1:0, with the protocol wrapped
        @property
        def name(self):
            return srv.url

        async def start(self):
            await super().start()
            factory = self._runner.server
            if cancel_on_disconnect:
                inner_factory = factory

                def factory():
                    return _CancelOnLost(inner_factory(), running)

            self._server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = Site(runner, shutdown_timeout=shutdown_timeout)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    srv._runner = runner
    srv.port = site._server.sockets[0].getsockname()[1]
    srv.url = srv.uri = "http://127.0.0.1:%d" % srv.port
    return srv


class WsServer(Counters):
    def __init__(self):
        super().__init__()
        self.port = None
        self.url = None
        self.uri = None
        self._server = None

    def __repr__(self):
        return "<WsServer %s %r>" % (self.uri, self.counts())

    async def close(self):
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()


async def start_ws_echo():
    import websockets

    srv = WsServer()

    async def session(ws):
        if ws.path == "/count":
            for i in range(1, 6):
                await ws.send(str(i))
            await ws.close()
            return
        async for msg in ws:
            await ws.send(msg)

    async def handler(ws):
        try:
            await srv.run(session, ws)
        except websockets.ConnectionClosed:
            pass

    server = await websockets.serve(handler, "127.0.0.1", 0)
    srv._server = server
    srv.port = server.sockets[0].getsockname()[1]
    srv.url = srv.uri = "ws://127.0.0.1:%d" % srv.port
    return srv
