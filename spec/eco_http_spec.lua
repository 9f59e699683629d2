-- eco_http_spec.lua - HTTP libraries used from Lua (docs/ecosystem.md):
-- aiohttp's ClientSession made in Lua against spec/pyservers.py's server,
-- an aiohttp server whose handlers are Lua functions, httpx's AsyncClient
-- (also streaming, left early), and starlette + uvicorn serving Lua
-- handlers.  Real servers on 127.0.0.1, no mocks.
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

py.init{path = {support.source .. "/spec"}}

local asyncio = py.import "asyncio"
local aiohttp = py.import "aiohttp"
local web = py.import "aiohttp.web"
local httpx = py.import "httpx"
local pyservers = py.import "pyservers"

local T = {timeout = 10}

-- The port of a listening asyncio server (aiohttp's site._server, uvicorn's
-- server.servers[0]).
local function port_of(server)
  return server.sockets[0]:getsockname()[1]
end

describe("aiohttp ClientSession made in Lua", function()
  local srv, session

  setup(function()
    srv = py.await(pyservers.start_http(), T)
    session = aiohttp.ClientSession()
  end)

  teardown(function()
    if session then py.await(session:close(), T) end
    if srv then py.await(srv:close(), T) end
  end)

  it("belongs to py.loop", function()
    assert.is_true(py.is(session._loop, py.loop))
  end)

  it("gets text, json, and posts a body", function()
    local resp = py.await(session:get(srv.url .. "/hello"), T)
    assert.are.equal(200, resp.status)
    assert.are.equal("hello", py.await(resp:text(), T))
    resp:release()
    local j = py.with(session:get(srv.url .. "/json"), function(r)
      return py.await(r:json(), T)
    end)
    assert.is_true(j.ok)
    assert.are.equal(42, j.n)
    local body = py.with(session:post(srv.url .. "/post", py.kw{data = "payload"}), function(r)
      assert.are.equal(200, r.status)
      return py.await(r:read(), T)
    end)
    assert.are.equal("payload", body)
  end)

  it("runs in a task too", function()
    local text = py.run(function()
      return py.with(session:get(srv.url .. "/echo", py.kw{params = {x = "in a task"}}), function(r)
        return py.await(r:text(), T)
      end)
    end)
    assert.are.equal("in a task", text)
  end)

  it("50 requests at once with py.gather", function()
    local gets = {}
    for i = 1, 50 do
      gets[i] = session:get(srv.url .. "/echo", py.kw{params = {x = tostring(i)}})
    end
    local resps = py.gather(gets, T)
    local texts = {}
    for i = 1, 50 do
      assert.are.equal(200, resps[i].status)
      texts[i] = resps[i]:text()
    end
    local got = py.gather(texts, T)
    assert.are.equal(50, got.n)
    for i = 1, 50 do assert.are.equal(tostring(i), got[i]) end
  end)

  it("50 Lua tasks, each with py.with(session:get(url), fn)", function()
    local tasks = {}
    for i = 1, 50 do
      tasks[i] = py.spawn(function()
        return py.with(session:get(srv.url .. "/echo", py.kw{params = {x = "t" .. i}}), function(r)
          return py.await(r:text(), T)
        end)
      end)
    end
    local got = py.gather(tasks, T)
    for i = 1, 50 do assert.are.equal("t" .. i, got[i]) end
  end)

  it("py.enter(aiohttp.ClientSession()) closes the session at the end of the block", function()
    local s
    do
      local sess <close>, v = py.enter(aiohttp.ClientSession())
      s = v
      assert.is_false(s.closed)
      local r <close> = py.enter(sess:get(srv.url .. "/hello"))
      assert.are.equal("hello", py.await(r:text(), T))
    end
    assert.is_true(s.closed)
  end)

  it("py.with(aiohttp.ClientSession(), fn) in a task, and an error inside it", function()
    local s
    local ok, e = pcall(py.run, function()
      py.with(aiohttp.ClientSession(), function(sess)
        s = sess
        py.with(sess:get(srv.url .. "/json"), function(r)
          error({status = r.status})
        end)
      end)
    end)
    assert.is_false(ok)
    assert.are.equal(200, e.status)
    assert.is_true(s.closed)
  end)

  it("a timeout cancels the request and the server's handler", function()
    local ok, e = pcall(py.await, session:get(srv.url .. "/slow", py.kw{params = {d = "30"}}),
                        {timeout = 0.2})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.is_true(py.await(srv:idle(10), T))
    assert.is_true(srv.cancelled >= 1)
  end)

  it("cancelling a task inside py.enter(ClientSession()) closes the session", function()
    local s
    py.run(function()
      local started = asyncio.Event()
      local t = py.spawn(function()
        local sess <close>, v = py.enter(aiohttp.ClientSession())
        s = v
        local req = py.start(sess:get(srv.url .. "/slow", py.kw{params = {d = "30"}}))
        started:set()
        return req:await{timeout = 60}
      end)
      py.await(started:wait(), T)
      t:cancel()
      assert.is_false(pcall(t.await, t, T))
      assert.is_true(t:cancelled())
    end)
    assert.is_true(s.closed)
    assert.is_true(py.await(srv:idle(10), T))
  end)

  it("the server saw every request end well", function()
    assert.is_true(py.await(srv:idle(10), T))
    assert.are.equal(0, srv.failed)
  end)
end)

describe("an aiohttp server with Lua handlers", function()
  it("serves concurrent requests from a ClientSession, each handler a Lua task", function()
    local N = 20
    local active, max_active = 0, 0
    local all_in = asyncio.Event()
    local function hello(request)
      active = active + 1
      if active > max_active then max_active = active end
      if active == N then all_in:set() end
      -- every handler waits until all N are inside: they run concurrently
      py.await(all_in:wait(), T)
      active = active - 1
      return web.Response(py.kw{text = "lua says " .. request.match_info:get("name")})
    end
    local function sum(request)
      local body = py.await(request:json(), T)
      local s = 0
      for _, v in pairs(body) do s = s + v end
      return web.json_response({sum = s})
    end
    local function fails()
      error("handler failed")
    end
    local app = web.Application()
    app.router:add_get("/hi/{name}", py.async_fn(hello))
    app.router:add_post("/sum", py.async_fn(sum))
    app.router:add_get("/fails", py.async_fn(fails))
    local runner = web.AppRunner(app, py.kw{access_log = py.None, handle_signals = false})
    py.await(runner:setup(), T)
    local site = web.TCPSite(runner, "127.0.0.1", 0)
    py.await(site:start(), T)
    local url = "http://127.0.0.1:" .. port_of(site._server)

    local ok, err = pcall(py.with, aiohttp.ClientSession(), function(session)
      local gets = {}
      for i = 1, N do
        gets[i] = py.spawn(function()
          return py.with(session:get(url .. "/hi/n" .. i), function(r)
            assert.are.equal(200, r.status)
            return py.await(r:text(), T)
          end)
        end)
      end
      local got = py.gather(gets, T)
      for i = 1, N do assert.are.equal("lua says n" .. i, got[i]) end
      assert.are.equal(N, max_active)
      assert.are.equal(0, active)

      local total = py.with(session:post(url .. "/sum", py.kw{json = {1, 2, 3, 4}}), function(r)
        return py.await(r:json(), T).sum
      end)
      assert.are.equal(10, total)

      -- a Lua error in a handler: aiohttp answers 500 (and logs it: not
      -- here) and keeps serving
      local logging = py.import "logging"
      logging.getLogger("aiohttp.server"):setLevel(logging.CRITICAL)
      assert.are.equal(500, py.with(session:get(url .. "/fails"), function(r) return r.status end))
      assert.are.equal("lua says x", py.with(session:get(url .. "/hi/x"), function(r)
        all_in:set()
        return py.await(r:text(), T)
      end))
    end)
    py.await(runner:cleanup(), T)
    assert.is_true(ok, tostring(err))
  end)
end)

describe("httpx AsyncClient made in Lua", function()
  local srv

  setup(function()
    srv = py.await(pyservers.start_http(), T)
  end)

  teardown(function()
    if srv then py.await(srv:close(), T) end
  end)

  -- httpx 0.23 / httpcore 0.16: client._transport._pool is the
  -- AsyncConnectionPool; .connections its connections, ._requests the
  -- requests holding one.
  local function pool_state(client)
    local pool = client._transport._pool
    local st = {connections = #pool.connections, requests = #pool._requests, idle = 0, busy = 0}
    for _, c in pairs(pool.connections) do
      if c:is_idle() then st.idle = st.idle + 1
      elseif not c:is_closed() then st.busy = st.busy + 1 end
    end
    return st
  end

  it("gets, posts json, and runs requests concurrently", function()
    py.with(httpx.AsyncClient(py.kw{base_url = srv.url}), function(client)
      local r = py.await(client:get("/hello"), T)
      assert.are.equal(200, r.status_code)
      assert.are.equal("hello", r.text)
      assert.are.equal(42, py.await(client:get("/json"), T):json().n)
      local p = py.await(client:post("/post", py.kw{json = {a = 1}}), T)
      assert.are.equal(1, p:json().a)
      local gets = {}
      for i = 1, 30 do gets[i] = client:get("/echo", py.kw{params = {x = tostring(i)}}) end
      local rs = py.gather(gets, T)
      for i = 1, 30 do assert.are.equal(tostring(i), rs[i].text) end
    end)
  end)

  it("client:stream read to the end: the connection goes back to the pool, idle", function()
    py.with(httpx.AsyncClient(), function(client)
      local lines = py.with(client:stream("GET", srv.url .. "/lines", py.kw{params = {n = 5}}), function(resp)
        assert.are.equal(200, resp.status_code)
        local got = {}
        for line in py.aiter(resp:aiter_lines()) do got[#got + 1] = line end
        return got
      end)
      assert.are.equal(5, #lines)
      assert.are.equal("line 1", (lines[1]:gsub("\n$", "")))
      assert.are.equal("line 5", (lines[5]:gsub("\n$", "")))
      assert.are.same({connections = 1, requests = 0, idle = 1, busy = 0}, pool_state(client))
    end)
  end)

  it("client:stream left early with break: nothing holds the pool afterwards", function()
    py.with(httpx.AsyncClient(), function(client)
      local n = 0
      py.with(client:stream("GET", srv.url .. "/lines", py.kw{params = {n = 100000}}), function(resp)
        for _ in py.aiter(resp:aiter_lines()) do
          n = n + 1
          if n == 3 then break end
        end
      end)
      assert.are.equal(3, n)
      -- the unread connection is closed, not left busy; no request holds one
      local st = pool_state(client)
      assert.are.equal(0, st.requests)
      assert.are.equal(0, st.busy)
      -- and with py.enter, leaving the block by break from an outer loop
      for _ = 1, 2 do  -- luacheck: ignore 512 (left by break)
        local resp <close> = py.enter(client:stream("GET", srv.url .. "/lines", py.kw{params = {n = 100000}}))
        for line in py.aiter(resp:aiter_lines()) do
          if line:find("line 2", 1, true) then break end
        end
        break
      end
      st = pool_state(client)
      assert.are.equal(0, st.requests)
      assert.are.equal(0, st.busy)
      -- the client still works
      assert.are.equal("hello", py.await(client:get(srv.url .. "/hello"), T).text)
      st = pool_state(client)
      assert.are.same({requests = 0, busy = 0}, {requests = st.requests, busy = st.busy})
      assert.is_true(st.idle >= 1)
    end)
    assert.is_true(py.await(srv:idle(10), T))
    assert.are.equal(0, srv.failed)
  end)
end)

describe("starlette + uvicorn serving Lua handlers", function()
  it("serves Lua endpoints; stops with server.should_exit = true", function()
    local starlette = py.import "starlette.applications"
    local routing = py.import "starlette.routing"
    local responses = py.import "starlette.responses"
    local uvicorn = py.import "uvicorn"
    local socket = py.import "socket"

    local function hello(request)
      py.await(asyncio.sleep(0), T)
      return responses.PlainTextResponse("hello " .. request.path_params.name)
    end
    local function echo_json(request)
      local body = py.await(request:json(), T)
      return responses.JSONResponse({got = body.x, from_lua = true})
    end
    local app = starlette.Starlette(py.kw{routes = {
      routing.Route("/hi/{name}", py.async_fn(hello)),
      routing.Route("/json", py.async_fn(echo_json), py.kw{methods = {"POST"}}),
    }})
    -- a socket already listening: uvicorn serves it, and connections made
    -- before serve() has started wait in its backlog (no polling needed)
    local sock = socket.socket()
    sock:bind(py.tuple("127.0.0.1", 0))
    sock:listen(128)
    local port = sock:getsockname()[1]
    local config = uvicorn.Config(app, py.kw{log_level = "warning", lifespan = "off"})
    local server = uvicorn.Server(config)
    local serving = py.start(server:serve(py.kw{sockets = {sock}}))
    local url = "http://127.0.0.1:" .. port

    local ok, err = pcall(py.with, httpx.AsyncClient(py.kw{base_url = url}), function(client)
      local r = py.await(client:get("/hi/bob"), T)
      assert.are.equal(200, r.status_code)
      assert.are.equal("hello bob", r.text)
      assert.is_true(server.started)
      local j = py.await(client:post("/json", py.kw{json = {x = "y"}}), T):json()
      assert.are.equal("y", j.got)
      assert.is_true(j.from_lua)
      local gets = {}
      for i = 1, 20 do gets[i] = client:get("/hi/" .. i) end
      local rs = py.gather(gets, T)
      for i = 1, 20 do assert.are.equal("hello " .. i, rs[i].text) end
      assert.are.equal(404, py.await(client:get("/nowhere"), T).status_code)
    end)
    server.should_exit = true
    serving:await(T)
    sock:close()
    assert.is_true(ok, tostring(err))
    assert.is_true(serving:done())
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
