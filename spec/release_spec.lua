-- release_spec.lua - deterministic release of proxies (API.md section 3):
-- py.release, <close>, the error on later use, and __gc handing the
-- reference to the pending list that the next GIL acquisition drains.
local py = require "pyasync"

py.exec([[
import weakref as _rel_weakref
class _RelC:
    pass
]])

-- A weak reference to a fresh _RelC instance, and the proxy holding it.
local function fresh()
  local o = py.main._RelC()
  return o, py.dict{w = py.main._rel_weakref.ref(o)}
end

local function alive(ns)
  return py.eval("w() is not None", ns)
end

local function assert_released(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok)
  assert.is_truthy(tostring(e):find("released Python object", 1, true))
  assert.is_false(py._core._gil_held())
end

describe("py.release", function()
  it("drops the reference at once", function()
    local o, ns = fresh()
    assert.is_true(alive(ns))
    py.release(o)
    assert.is_false(alive(ns))
  end)

  it("makes every later use raise 'released Python object'", function()
    local o = py.eval("[1, 2]")
    py.release(o)
    assert_released(function() return o.append end)
    assert_released(function() return o[0] end)
    assert_released(function() o[0] = 1 end)
    assert_released(function() o.x = 1 end)
    assert_released(function() return o() end)
    assert_released(function() return #o end)
    assert_released(tostring, o)
    assert_released(function() return o + 1 end)
    assert_released(function() return o < 1 end)
    assert_released(function() return o == py.eval("[]") end)
    assert_released(function() return -o end)
    assert_released(pairs, o)
    assert_released(py.iter, o)
    assert_released(py.type, o)
    assert_released(py.getattr, o, "append")
    assert_released(py.totable, o)
    assert.are.equal(2, py.eval("1 + 1"))
  end)

  it("makes passing the proxy to Python raise too", function()
    local o = py.eval("object()")
    py.release(o)
    assert_released(py.builtins.id, o)
    assert_released(py.tuple, o)
    assert_released(py.is, o, o)
    assert_released(function() py.main._rel_x = {1, {o}} end)
    assert_released(py.exec, "pass", o)
    local _, e = pcall(py.builtins.id, o)
    assert.are.equal("ValueError", e.type)
  end)

  it("is idempotent and accepts nil", function()
    local o = py.eval("object()")
    py.release(o)
    py.release(o)
    py.release(nil)
    py.release()
    local ok, e = pcall(py.release, 5)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("Python object expected", 1, true))
  end)

  it("leaves other proxies of the same object alone", function()
    local l = py.eval("[7]")
    py.main._rel_l = l
    local l2 = py.main._rel_l
    py.release(l)
    assert.are.equal(7, l2[0])
    assert.are.equal(1, #py.main._rel_l)
  end)

  it("of a bound method keeps its receiver working", function()
    local l = py.eval("[]")
    local append = l.append
    append(1)
    py.release(append)
    l:append(2)
    assert.are.equal(2, #l)
  end)
end)

describe("<close>", function()
  it("releases at the end of the block", function()
    local keep, ns
    do
      local o <close>, n = fresh()
      keep, ns = o, n
      assert.is_true(alive(ns))
    end
    assert.is_false(alive(ns))
    assert_released(tostring, keep)
  end)

  it("releases when the block is left by an error", function()
    local keep, ns
    local ok = pcall(function()
      local o <close>, n = fresh()
      keep, ns = o, n
      error("leave")
    end)
    assert.is_false(ok)
    assert.is_false(alive(ns))
    assert_released(function() return keep.x end)
  end)
end)

describe("garbage collection", function()
  it("frees the object at the next Python call, never in __gc itself", function()
    collectgarbage("stop")  -- no collection before we ask for one
    local ns = select(2, fresh())  -- the proxy is garbage from here on
    assert.is_true(alive(ns))
    collectgarbage("restart")
    collectgarbage()
    collectgarbage()
    -- the reference went to the pending list; this call drains it first
    assert.is_false(alive(ns))
  end)

  it("collects many proxies without trouble", function()
    local ns = py.dict{}
    py.exec("import weakref\nrefs = []", ns)
    collectgarbage("stop")
    for _ = 1, 500 do
      local o = py.main._RelC()
      ns.refs:append(py.main._rel_weakref.ref(o))
    end
    assert.are.equal(500, py.eval("sum(r() is not None for r in refs)", ns))
    collectgarbage("restart")
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, py.eval("sum(r() is not None for r in refs)", ns))
  end)
end)
