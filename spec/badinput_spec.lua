-- badinput_spec.lua - misuse from Lua (API.md section 4): each case raises a
-- clear Lua error, never crashes, and leaves the runtime usable, with the
-- GIL let go (a failed check while holding it would starve the loop thread).
local py = require "pyasync"

py.exec([[
import asyncio

async def _bad_async(x):
    await asyncio.sleep(0)
    return x

class _BadDunders:
    def __str__(self): raise ValueError("no str")
    def __len__(self): raise ValueError("no len")
    def __eq__(self, other): raise ValueError("no eq")
    def __lt__(self, other): raise ValueError("no lt")
    def __le__(self, other): raise ValueError("no le")
    def __add__(self, other): raise ValueError("no add")
    def __neg__(self): raise ValueError("no neg")
    def __hash__(self): raise ValueError("no hash")
    def __iter__(self): raise ValueError("no iter")
    def __getattr__(self, name): raise ValueError("no attr " + name)
    def __getitem__(self, k): raise ValueError("no item")
    def __call__(self): raise ValueError("no call")
    def __index__(self): raise ValueError("no index")

class _BadStrType:
    def __str__(self): return 42

class _BadDel:
    def __del__(self): raise ValueError("no del")
]])

-- The runtime still works: a sync call, an async one, and no GIL kept.
local function usable()
  assert.is_false(py._core._gil_held(), "GIL left taken")
  assert.are.equal(2, py.eval("1 + 1"))
  assert.are.equal(7, py.await(py.main._bad_async(7)))
  assert.is_false(py._core._gil_held(), "GIL left taken")
end

-- f(...) must fail with a Lua error; returns it.
local function fails(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.is_not_nil(e)
  usable()
  return e
end

-- f(...) must fail with a PyError of Python type ty.
local function pyfails(ty, f, ...)
  local e = fails(f, ...)
  assert.is_true(py.iserror(e), "not a PyError: " .. tostring(e))
  assert.are.equal(ty, e.type)
  return e
end

local function msg(e) return tostring(e) end

describe("wrong argument types", function()
  it("py.eval / py.exec / py.import want strings", function()
    assert.is_truthy(msg(fails(py.eval, nil)):find("string expected, got nil", 1, true))
    assert.is_truthy(msg(fails(py.exec, {})):find("string expected, got table", 1, true))
    assert.is_truthy(msg(fails(py.import, {})):find("string expected, got table", 1, true))
    assert.is_truthy(msg(fails(py.import)):find("string expected, got no value", 1, true))
  end)

  it("the explicit forms want a proxy and a name", function()
    assert.is_truthy(msg(fails(py.getattr, 1, "x")):find("Python object expected, got number", 1, true))
    assert.is_truthy(msg(fails(py.getattr, py.main, {})):find("string expected, got table", 1, true))
    assert.is_truthy(msg(fails(py.setattr, py.main, nil, 1)):find("string expected, got nil", 1, true))
    assert.is_truthy(msg(fails(py.hasattr, py.main)):find("string expected", 1, true))
    assert.is_truthy(msg(fails(py.item, py.dict{})):find("value expected", 1, true))
    assert.is_truthy(msg(fails(py.setitem, py.dict{}, "k")):find("value expected", 1, true))
    assert.is_truthy(msg(fails(py.delitem, "s", 1)):find("Python object expected", 1, true))
    assert.is_truthy(msg(fails(py.isinstance, 1, "int")):find("Python object expected", 1, true))
    assert.is_truthy(msg(fails(py.iter, {1, 2})):find("Python object expected", 1, true))
    assert.is_truthy(msg(fails(py.kw, 5)):find("table expected", 1, true))
    assert.is_truthy(msg(fails(py.call, print)):find("Python object expected", 1, true))
    assert.is_truthy(msg(fails(py.call, py.builtins.len, {n = -1})):find("bad argument count", 1, true))
    assert.is_truthy(msg(fails(py.bytes)):find("value expected", 1, true))
    assert.is_truthy(msg(fails(py.list)):find("value expected", 1, true))
  end)

  it("a missing key is a KeyError, a bad attribute name an AttributeError", function()
    pyfails("KeyError", py.item, py.dict{}, "nope")
    pyfails("KeyError", py.delitem, py.dict{}, "nope")
    pyfails("AttributeError", py.getattr, py.main, "no_such_attribute_here")
  end)

  it("py.bytes and py.list of what they cannot convert raise TypeError", function()
    pyfails("TypeError", py.bytes, true)
    pyfails("TypeError", py.list, 5)
    pyfails("TypeError", py.dict, py.eval("object()"))
  end)
end)

describe("calling what cannot be called", function()
  it("a non-callable proxy raises TypeError", function()
    pyfails("TypeError", function() return py.eval("object()")() end)
    pyfails("TypeError", function() return py.eval("[1]")() end)
  end)

  it("wrong arguments raise TypeError", function()
    pyfails("TypeError", py.builtins.len)
    pyfails("TypeError", py.builtins.len, 1, 2)
    pyfails("TypeError", py.builtins.len, py.kw{x = 1})
    pyfails("TypeError", py.builtins.len, {}, py.kw{[true] = 1})
  end)

  it("a Lua value is not callable as Python", function()
    assert.is_truthy(msg(fails(function() return py.eval("5")() end)):find("attempt to call", 1, true))
  end)
end)

describe("values that cannot be converted", function()
  it("a thread or a foreign userdata in a table", function()
    local e = pyfails("TypeError", py.builtins.len, {1, coroutine.create(print)})
    assert.is_truthy(e.message:find("thread", 1, true))
    pyfails("TypeError", py.builtins.len, {io.stdout})
  end)

  it("a table used as a dict key (unhashable list or dict)", function()
    pyfails("TypeError", py.builtins.len, {[{}] = 1})
    pyfails("TypeError", py.builtins.len, {[{a = 1}] = 1})
    pyfails("TypeError", py.builtins.len, {[py.eval("[]")] = 1})
  end)

  it("a cyclic table", function()
    local t = {}
    t.self = t
    local e = pyfails("ValueError", py.builtins.len, t)
    assert.is_truthy(e.message:find("cyclic", 1, true))
    local l = {1}
    l[2] = {l}
    pyfails("ValueError", function() py.main._bad_x = l end)
  end)

  it("a table nested too deeply", function()
    local t = {}
    for _ = 1, 1000 do t = {t} end
    local e = pyfails("ValueError", py.builtins.len, t)
    assert.is_truthy(e.message:find("too deep", 1, true))
  end)

  it("keys that collide in Python", function()
    pyfails("ValueError", py.builtins.len, {[1] = "a", [true] = "b"})
    pyfails("ValueError", py.builtins.len, {[0] = "a", [false] = "b"})
  end)

  it("conversion in a deep Lua stack fails cleanly", function()
    local function deep(n)
      if n == 0 then return py.builtins.len({{{1}}}) end
      return (deep(n - 1))
    end
    assert.are.equal(1, deep(150))
    usable()
  end)
end)

describe("strings and integers", function()
  it("invalid UTF-8 is bytes, not an error", function()
    assert.are.equal("bytes", py.type("\xc3\x28"))
    assert.are.equal(2, py.builtins.len("\xc3\x28"))
    usable()
  end)

  it("invalid UTF-8 as Python source is a SyntaxError", function()
    pyfails("SyntaxError", py.exec, "x = '\xff'")
  end)

  it("ints beyond 64 bits come as exact proxies", function()
    local big = py.eval("2**64")
    assert.are.equal("userdata", type(big))
    assert.are.equal("18446744073709551616", tostring(big))
    assert.are.equal(math.maxinteger, py.eval("2**63 - 1"))
    assert.are.equal(math.mininteger, py.eval("-2**63"))
    assert.is_true(py.eval("x == 2**64 and type(x) is int", py.dict{x = big}))
    assert.are.equal(math.maxinteger, big // 2 - 1)
  end)

  it("a big-int proxy where Lua wants an integer is a Lua error", function()
    local big = py.eval("2**64")
    assert.is_truthy(msg(fails(string.rep, "x", big)):find("number expected", 1, true))
    pyfails("IndexError", function() return py.eval("[1]")[big] end)
    pyfails("OverflowError", py.builtins.chr, big)
  end)
end)

describe("Python exceptions inside special methods", function()
  local bad = py.main._BadDunders()

  it("__str__ raising makes tostring raise a PyError", function()
    local e = pyfails("ValueError", tostring, bad)
    assert.are.equal("no str", e.message)
  end)

  it("__str__ returning a non-str raises TypeError", function()
    pyfails("TypeError", tostring, py.main._BadStrType())
  end)

  it("__len__, __eq__, __lt__, __le__ raising", function()
    assert.are.equal("no len", pyfails("ValueError", function() return #bad end).message)
    assert.are.equal("no eq", pyfails("ValueError", function() return bad == py.main._BadDunders() end).message)
    assert.are.equal("no lt", pyfails("ValueError", function() return bad < 1 end).message)
    assert.are.equal("no le", pyfails("ValueError", function() return bad <= 1 end).message)
  end)

  it("__add__, __neg__, __hash__, __iter__ raising", function()
    assert.are.equal("no add", pyfails("ValueError", function() return bad + 1 end).message)
    assert.are.equal("no neg", pyfails("ValueError", function() return -bad end).message)
    assert.are.equal("no hash", pyfails("ValueError", py.builtins.len, {[bad] = 1}).message)
    assert.are.equal("no iter", pyfails("ValueError", py.iter, bad).message)
    assert.are.equal("no iter", pyfails("ValueError", pairs, bad).message)
  end)

  it("__getattr__, __getitem__, __call__, __index__ raising", function()
    assert.are.equal("no attr foo", pyfails("ValueError", function() return bad.foo end).message)
    assert.are.equal("no item", pyfails("ValueError", function() return bad[1] end).message)
    assert.are.equal("no call", pyfails("ValueError", function() return bad() end).message)
    assert.are.equal("no index", pyfails("ValueError", function() return py.eval("[1]")[bad] end).message)
  end)

  it("__del__ raising on release is reported by Python, not raised", function()
    py.exec([[
import sys
_bad_unraisable = []
_bad_old_hook = sys.unraisablehook
sys.unraisablehook = lambda u: _bad_unraisable.append(str(u.exc_value))
]])
    local o = py.main._BadDel()
    py.release(o)
    usable()
    py.main._BadDel()
    collectgarbage()
    collectgarbage()
    usable()
    py.exec("sys.unraisablehook = _bad_old_hook")
    assert.are.equal("['no del', 'no del']", tostring(py.main._bad_unraisable))
  end)
end)

describe("Lua functions misbehaving under Python", function()
  it("a yield across the Python call is an error, not a crash", function()
    local co = coroutine.create(function()
      return py.main._bad_apply(function() coroutine.yield(1) end)
    end)
    py.exec("def _bad_apply(f):\n    return f()")
    local ok, e = coroutine.resume(co)
    assert.is_false(ok)
    -- the Lua error crossed Python as LuaError and came back as it was
    assert.are.equal("string", type(e))
    assert.is_truthy(e:find("yield across", 1, true))
    usable()
  end)

  it("an error value whose __tostring fails still crosses", function()
    local err = setmetatable({}, {__tostring = function() error("no tostring") end})
    py.exec("def _bad_apply(f):\n    return f()")
    local e = fails(py.main._bad_apply, function() error(err) end)
    assert.is_true(rawequal(err, e))
  end)

  it("a PyError whose exception was released, passed to Python", function()
    local _, pe = pcall(py.eval, "1/0")
    py.release(pe.exception)
    local e = pyfails("ValueError", py.builtins.id, pe)
    assert.is_truthy(e.message:find("released", 1, true))
  end)
end)

describe("proxies are opaque", function()
  it("their metatable is protected", function()
    assert.are.equal("Python object", getmetatable(py.main))
  end)

  it("a released namespace or iterator is refused", function()
    local ns = py.dict{}
    py.release(ns)
    assert.is_truthy(msg(fails(py.exec, "x = 1", ns)):find("released Python object", 1, true))
    local it = py.iter(py.eval("[1, 2]"))
    local _, state = py.iter(py.eval("[1, 2]"))
    py.release(state)
    assert.is_truthy(msg(fails(it, state)):find("released Python object", 1, true))
  end)
end)
