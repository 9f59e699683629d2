-- fault_spec.lua - faults in every callback position end with a clear error,
-- no hang and no crash, and the runtime keeps working afterwards.
local py = require "pyasync"
local support = require "support"

py.exec([[
import asyncio, sys
fault_log = []

async def fa_ok(x):
    await asyncio.sleep(0)
    return x

def fa_future_with_bad_callback():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    def bad(f):
        fault_log.append("callback ran")
        raise RuntimeError("done callback fails")
    fut.add_done_callback(bad)
    loop.call_soon(fut.set_result, "value")
    return fut

async def fa_make_future():
    return fa_future_with_bad_callback()

class FaBadAwait:
    def __await__(self):
        raise ValueError("__await__ fails")

class FaBadAwaitLater:
    def __await__(self):
        yield
        raise ValueError("__await__ fails later")

class FaBadDel:
    def __del__(self):
        fault_log.append("del ran")
        raise RuntimeError("__del__ fails")

async def fa_bad_aclose_gen():
    try:
        while True:
            await asyncio.sleep(0)
            yield 1
    finally:
        raise RuntimeError("aclose fails")

async def fa_raise(kind):
    await asyncio.sleep(0)
    raise {"ki": KeyboardInterrupt, "se": SystemExit}[kind]("from python")

async def fa_raise_now(kind):  # in the first step, which runs eagerly
    raise {"ki": KeyboardInterrupt, "se": SystemExit}[kind]("from python")
]])

local function still_works()
  assert.are.equal(7, py.await(py.main.fa_ok(7)))
  assert.are.equal(2, py.eval("1 + 1"))
end

describe("faults raised by Python", function()
  before_each(function() py.main.fault_log:clear() end)

  it("in a done callback: the await still completes", function()
    local fut = py.await(py.main.fa_make_future())
    assert.are.equal("value", py.await(fut))
    still_works()
    assert.are.equal("callback ran", py.main.fault_log[0])
  end)

  it("in __await__, at once or after a suspension", function()
    local ok, e = pcall(py.await, py.main.FaBadAwait())
    assert.is_false(ok)
    assert.are.equal("ValueError", e.type)
    ok, e = pcall(py.await, py.main.FaBadAwaitLater())
    assert.is_false(ok)
    assert.are.equal("__await__ fails later", e.message)
    still_works()
  end)

  it("in __del__: reported by Python, never a crash", function()
    local o = py.main.FaBadDel()
    py.release(o)
    local o2 = py.main.FaBadDel()  -- luacheck: ignore 231
    o2 = nil
    collectgarbage()
    py.eval("0")
    assert.are.equal(2, #py.main.fault_log)
    still_works()
  end)

  it("in aclose(): raised on break, not swallowed", function()
    local ok, e = pcall(function()
      for _ in py.aiter(py.main.fa_bad_aclose_gen()) do break end  -- luacheck: ignore 512
    end)
    assert.is_false(ok)
    assert.are.equal("RuntimeError", e.type)
    assert.are.equal("aclose fails", e.message)
    still_works()
  end)

  it("KeyboardInterrupt and SystemExit, sync and async", function()
    local ok, e = pcall(py.exec, "raise KeyboardInterrupt('sync')")
    assert.is_false(ok)
    assert.are.equal("KeyboardInterrupt", e.type)
    ok, e = pcall(py.exec, "raise SystemExit(4)")
    assert.is_false(ok)
    assert.are.equal("SystemExit", e.type)
    for _, kind in ipairs{"ki", "se"} do
      for _, f in ipairs{py.main.fa_raise, py.main.fa_raise_now} do
        ok, e = pcall(py.await, f(kind))
        assert.is_false(ok)
        assert.are.equal(kind == "ki" and "KeyboardInterrupt" or "SystemExit", e.type)
        still_works()
      end
    end
  end)
end)

describe("faults raised by Lua", function()
  it("in __close while a task awaits", function()
    local ok, e = pcall(py.run, function()
      local _ <close> = setmetatable({}, {__close = function() error("close fails", 0) end})
      py.await(py.main.fa_ok(1))
    end)
    assert.is_false(ok)
    assert.are.equal("close fails", e)
    still_works()
  end)

  it("in __gc: a warning at most, never a crash", function()
    for _ = 1, 10 do
      setmetatable({}, {__gc = function() py.eval("1"); error("gc fails") end})
    end
    collectgarbage()
    collectgarbage()
    still_works()
  end)

  it("in an async_fn awaited by Python", function()
    local f = py.async_fn(function() py.sleep(0); error("async_fn fails", 0) end)
    py.main.fa_lua = f
    py.exec([[
async def fa_call_lua():
    from pyasync import LuaError
    try:
        await fa_lua()
    except LuaError as e:
        return "caught " + str(e)
]])
    assert.are.equal("caught async_fn fails", py.await(py.main.fa_call_lua()))
    still_works()
  end)
end)

describe("exits with work in flight", function()
  local script = [[
local py = require "pyasync"
py.exec("import asyncio\nasync def forever(i):\n    await asyncio.sleep(3600)\nasync def gen():\n    while True:\n        await asyncio.sleep(0)\n        yield 1")
for i = 1, 200 do py.start(py.main.forever(i)) end
local it, st = py.aiter(py.main.gen(), {prefetch = 4})
it(st)
py.spawn(function() py.sleep(3600) end)
py.spawn(function() py.await(py.main.forever(0)) end)
io.write("started\n")
%s
]]
  for _, how in ipairs{"host", "lua"} do
    it("the process exits (" .. how .. ")", function()
      local out, err, code = support.run_script(script:format("os.exit(0)"), how)
      assert.are.equal("started\n", out)
      assert.are.equal(0, code, err)
    end)
    it("the Lua state closes (" .. how .. ")", function()
      local out, err, code = support.run_script(script:format("os.exit(5, true)"), how)
      assert.are.equal("started\n", out)
      assert.are.equal(5, code, err)
    end)
  end
end)
