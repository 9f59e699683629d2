-- luv and pyasync share one libuv loop: luv timers and sockets keep running
-- while Lua tasks await Python coroutines.
local py = require "pyasync"
local support = require "support"
local uv = require "luv"

py.exec([[
import asyncio
async def _luv_slow(x, n):
    for _ in range(n):
        await asyncio.sleep(0.005)
    return x
]])

describe("luv interop", function()
  it("serves a luv TCP echo on loopback while Python coroutines run", function()
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    local port = server:getsockname().port
    server:listen(16, function()
      local c = uv.new_tcp()
      server:accept(c)
      c:read_start(function(_, data)
        if data then c:write(data) else c:close() end
      end)
    end)
    local got = {}
    py.run(function()
      local pending = py.start(py.main._luv_slow("python", 20))
      for i = 1, 3 do
        local done = py.CancelToken()  -- used as a one-shot event
        local client = uv.new_tcp()
        client:connect("127.0.0.1", port, function(err)
          assert(not err, err)
          client:read_start(function(_, data)
            if data then got[i] = data; client:close(); done:cancel() end
          end)
          client:write("msg" .. i)
        end)
        -- wait for the echo while the Python coroutine is still running
        local ok = pcall(py.sleep, 30, {cancel = done})
        assert.is_false(ok)
      end
      assert.are.equal("python", pending:await())
    end)
    server:close()
    assert.are.same({"msg1", "msg2", "msg3"}, got)
    assert.is_true(support.drained())
  end)

  it("fires luv timers while a Lua task waits on Python", function()
    local ticks = 0
    local timer = uv.new_timer()
    timer:start(1, 1, function() ticks = ticks + 1 end)
    py.run(function()
      assert.are.equal(5, py.await(py.main._luv_slow(5, 10)))
    end)
    timer:stop()
    timer:close()
    assert.is_true(ticks > 0)
  end)

  it("refuses to wait inside a luv callback instead of re-entering the loop", function()
    local err
    local timer = uv.new_timer()
    local done = py.CancelToken()
    timer:start(1, 0, function()
      local _, e = pcall(py.await, py.main._luv_slow(1, 1))
      err = e
      done:cancel()
    end)
    py.run(function() pcall(py.sleep, 30, {cancel = done}) end)
    timer:close()
    assert.is_truthy(tostring(err):find("libuv", 1, true))
    -- and the runtime still works
    assert.are.equal(2, py.await(py.main._luv_slow(2, 1)))
  end)
end)
