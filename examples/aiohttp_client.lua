-- aiohttp_client.lua - an aiohttp ClientSession made in Lua: concurrent GETs
-- with py.gather, a POST, and a response read inside py.with.  The script
-- starts its own aiohttp server on 127.0.0.1 (a free port); its handlers
-- are Lua functions made async with py.async_fn.
local py = require "pyasync"

local aiohttp = py.import "aiohttp"
local web = py.import "aiohttp.web"
local asyncio = py.import "asyncio"

-- The server: each handler is a Lua task, so it may itself wait.
local function square(request)
  local n = tonumber(request.match_info:get("n"))
  py.await(asyncio.sleep(0.01))
  return web.json_response({n = n, square = n * n})
end

local function upper(request)
  local body = py.await(request:text())
  return web.Response(py.kw{text = body:upper()})
end

local app = web.Application()
app.router:add_get("/square/{n}", py.async_fn(square))
app.router:add_post("/upper", py.async_fn(upper))
local runner = web.AppRunner(app, py.kw{access_log = py.None})
py.await(runner:setup())
local site = web.TCPSite(runner, "127.0.0.1", 0)
py.await(site:start())
local url = "http://127.0.0.1:" .. site._server.sockets[0]:getsockname()[1]

-- The client: the session belongs to pyasync's loop (loop affinity).
py.with(aiohttp.ClientSession(), function(session)
  -- five requests at once
  local gets = {}
  for n = 1, 5 do gets[n] = session:get(url .. "/square/" .. n) end
  local responses = py.gather(gets, {timeout = 10})
  local bodies = {}
  for n = 1, 5 do bodies[n] = responses[n]:json() end
  for _, j in ipairs(py.gather(bodies, {timeout = 10})) do
    print(("%d squared is %d"):format(j.n, j.square))
  end

  -- one request, its response used inside py.with (released after)
  local text = py.with(session:post(url .. "/upper", py.kw{data = "shout this"}), function(resp)
    print("status", resp.status)
    return py.await(resp:text(), {timeout = 10})
  end)
  print(text)
end)

py.await(runner:cleanup())
print("done")
