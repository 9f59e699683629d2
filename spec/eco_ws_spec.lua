-- eco_ws_spec.lua - websockets (10.4) clients from Lua (docs/ecosystem.md)
-- against spec/pyservers.py's echo server: connect with py.await and as a
-- context manager, echo messages, iterate incoming messages with
-- py.aiter(ws), time out a recv, and aiohttp's websocket client too.
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

py.init{path = {support.source .. "/spec"}}

local asyncio = py.import "asyncio"
local websockets = py.import "websockets"
local pyservers = py.import "pyservers"

local T = {timeout = 10}

local function within(s, fn)
  return py.with(py.onloop(asyncio.timeout, s), fn)
end

describe("websockets client from Lua", function()
  local srv

  setup(function()
    srv = py.await(pyservers.start_ws_echo(), T)
  end)

  teardown(function()
    if srv then py.await(srv:close(), T) end
  end)

  it("connects with py.await, echoes several messages, closes", function()
    local ws = py.await(websockets.connect(srv.uri), T)
    assert.is_true(py.is(ws.loop, py.loop))
    for i = 1, 5 do
      py.await(ws:send("msg " .. i), T)
      assert.are.equal("msg " .. i, py.await(ws:recv(), T))
    end
    py.await(ws:close(), T)
    assert.is_true(ws.closed)
    assert.are.equal(1000, ws.close_code)
  end)

  it("connects with py.with, binary frames come back as Lua strings", function()
    local got = py.with(websockets.connect(srv.uri), function(ws)
      py.await(ws:send(py.bytes("\0\1\2\255")), T)
      return py.await(ws:recv(), T)
    end)
    assert.are.equal("\0\1\2\255", got)
  end)

  it("connects with py.enter; the connection is closed after the block", function()
    local conn
    do
      local ws <close>, v = py.enter(websockets.connect(srv.uri))
      conn = v
      py.await(ws:send("entered"), T)
      assert.are.equal("entered", py.await(ws:recv(), T))
      assert.is_true(conn.open)
    end
    assert.is_true(conn.closed)
  end)

  it("iterates incoming messages with py.aiter(ws) until the server closes (/count)", function()
    local got = {}
    py.with(websockets.connect(srv.uri .. "/count"), function(ws)
      within(10, function()
        for m in py.aiter(ws) do got[#got + 1] = m end
      end)
    end)
    assert.are.same({"1", "2", "3", "4", "5"}, got)
  end)

  it("leaves a py.aiter(ws) loop early; the connection stays usable", function()
    py.with(websockets.connect(srv.uri), function(ws)
      local sends = {}
      for i = 1, 10 do sends[i] = ws:send("c" .. i) end
      py.gather(sends, T)
      local got = {}
      within(10, function()
        for m in py.aiter(ws) do
          got[#got + 1] = m
          if #got == 4 then break end
        end
      end)
      assert.are.same({"c1", "c2", "c3", "c4"}, got)
      assert.is_true(ws.open)
      -- the rest are still there, in order
      assert.are.equal("c5", py.await(ws:recv(), T))
    end)
  end)

  it("many clients at once, each in a Lua task", function()
    local tasks = {}
    for i = 1, 10 do
      tasks[i] = py.spawn(function()
        return py.with(websockets.connect(srv.uri), function(ws)
          py.await(ws:send("client " .. i), T)
          return py.await(ws:recv(), T)
        end)
      end)
    end
    local got = py.gather(tasks, T)
    for i = 1, 10 do assert.are.equal("client " .. i, got[i]) end
  end)

  it("a timed-out recv leaves the connection working", function()
    py.with(websockets.connect(srv.uri), function(ws)
      local ok, e = pcall(py.await, ws:recv(), {timeout = 0.05})
      assert.is_false(ok)
      assert.are.equal("TimeoutError", e.type)
      py.await(ws:send("after"), T)
      assert.are.equal("after", py.await(ws:recv(), T))
    end)
  end)

  it("a refused connection is a PyError", function()
    local socket = py.import "socket"
    local s = socket.socket()
    s:bind(py.tuple("127.0.0.1", 0))
    local port = s:getsockname()[1]
    s:close()  -- nobody listens there now
    local ok, e = pcall(py.await, websockets.connect("ws://127.0.0.1:" .. port), T)
    assert.is_false(ok)
    assert.is_true(py.isinstance(e.exception, py.builtins.OSError))
  end)

  it("aiohttp's websocket client against the same server", function()
    local aiohttp = py.import "aiohttp"
    py.with(aiohttp.ClientSession(), function(session)
      py.with(session:ws_connect(srv.uri), function(ws)
        py.await(ws:send_str("via aiohttp"), T)
        local msg = py.await(ws:receive(), T)
        assert.are.equal("via aiohttp", msg.data)
      end)
    end)
  end)

  it("the server saw every session end well", function()
    assert.is_true(py.await(srv:idle(10), T))
    assert.are.equal(0, srv.failed)
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
