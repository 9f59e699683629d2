-- call_spec.lua - calls across the boundary: Lua calling Python (positional,
-- py.kw, py.call) and Python calling Lua functions (conversion, identity,
-- results, LuaError and the round trip of Lua error values).
local py = require "pyasync"

py.exec([[
def _call_show(*args, **kw):
    return repr(args) + ' ' + repr(sorted(kw.items()))

def _call_apply(f, *args, **kw):
    return f(*args, **kw)
]])

local show, apply = py.main._call_show, py.main._call_apply

describe("Lua calling Python", function()
  it("passes positional arguments", function()
    assert.are.equal("(1, 'a', None, True) []", show(1, "a", nil, true))
    assert.are.equal("() []", show())
  end)

  it("passes py.kw as keyword arguments", function()
    assert.are.equal("(1,) [('b', 2), ('c', None)]", show(1, py.kw{b = 2, c = py.None}))
    assert.are.equal("() [('x', 'y')]", show(py.kw{x = "y"}))
    local ok, e = pcall(show, py.kw{[1] = 2})
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
  end)

  it("passes more arguments than fit the stack buffer", function()
    local args = {}
    for i = 1, 40 do args[i] = i end
    assert.are.equal(820, py.builtins.sum(py.tuple(table.unpack(args))))
    assert.are.equal(40, apply(function(...) return select("#", ...) end, table.unpack(args)))
  end)

  it("py.call takes an argument table and a keyword table", function()
    assert.are.equal("(1, 2) [('k', 3)]", py.call(show, {1, 2}, {k = 3}))
    assert.are.equal("() []", py.call(show))
    assert.are.equal("(1, None, 3) []", py.call(show, {n = 3, 1, nil, 3}))
    assert.are.equal("() [('k', 1)]", py.call(show, nil, {k = 1}))
  end)

  it("py.call leaves the caller's keyword table an ordinary table", function()
    local kw = {k = 1}
    py.call(show, {}, kw)
    assert.is_nil(getmetatable(kw))
    assert.are.equal("({'k': 1},) []", show(kw))
  end)

  it("py.call refuses what is not a table", function()
    local ok, e = pcall(py.call, show, 5)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("table expected", 1, true))
    assert.is_false(py._core._gil_held())
  end)

  it("calls classes and builtins", function()
    assert.are.equal(3, py.builtins.len({1, 2, 3}))
    local F = py.import("fractions").Fraction
    assert.are.equal("3/4", tostring(F(3, 4)))
    assert.are.equal("[3, 2, 1]", tostring(py.builtins.sorted({1, 3, 2}, py.kw{reverse = true})))
  end)
end)

describe("Python calling Lua", function()
  it("converts the arguments", function()
    local got
    apply(function(...) got = table.pack(...) end, 1, "s", nil, {1, 2})
    assert.are.equal(4, got.n)
    assert.are.equal(1, got[1])
    assert.are.equal("s", got[2])
    assert.is_nil(got[3])
    assert.are.equal("list", py.type(got[4]))
  end)

  it("passes keyword arguments as one trailing table", function()
    local got
    py.main._call_f = function(...) got = table.pack(...) end
    py.exec("_call_f(1, a=2, b=None)")
    assert.are.equal(2, got.n)
    assert.are.equal(1, got[1])
    assert.are.same({a = 2}, got[2])  -- b=None is nil in Lua
  end)

  it("accepts keyword names that are not valid UTF-8", function()
    local got
    py.main._call_f = function(kw) got = kw end
    py.exec("_call_f(**{'\\udc80': 1})")
    assert.are.equal(1, got["\xed\xb2\x80"])
  end)

  it("returns None for no results, the value for one, a tuple for several", function()
    assert.is_nil(apply(function() end))
    assert.are.equal("NoneType", py.eval("type(f()).__name__", py.dict{f = function() end}))
    assert.are.equal(5, apply(function() return 5 end))
    local t = py.eval("f()", py.dict{f = function() return 1, "two", nil end})
    assert.are.equal("tuple", py.type(t))
    assert.is_true(py.eval("t == (1, 'two', None)", py.dict{t = t}))
  end)

  it("works as a key function and as a callback", function()
    local l = py.builtins.sorted({3, 1, 2}, py.kw{key = function(x) return -x end})
    assert.are.equal("[3, 2, 1]", tostring(l))
    local m = py.builtins.list(py.builtins.map(function(x) return x * 10 end, {1, 2}))
    assert.are.equal("[10, 20]", tostring(m))
  end)

  it("nests: Lua calls Python calls Lua calls Python", function()
    local function inner(x) return py.eval("x * 2", py.dict{x = x}) end
    assert.are.equal(42, apply(function(x) return apply(inner, x) + 2 end, 20))
  end)

  it("keeps the function's identity on the way back", function()
    local function f() end
    py.main._call_g = f
    assert.are.equal(f, py.main._call_g)
    assert.is_true(rawequal(f, py.main._call_g))
    assert.are.equal(f, py.eval("_call_g"))
    assert.are.equal(f, apply(function() return f end))
    assert.are.equal(f, py.totable(py.eval("[_call_g]"))[1])
    assert.are.equal("function", type(py.eval("_call_g")))
  end)

  it("is a Python callable of type pyasync.LuaFunction", function()
    py.main._call_g = print
    assert.is_true(py.eval("callable(_call_g)"))
    assert.are.equal("pyasync.LuaFunction", py.eval("type(_call_g).__module__ + '.' + type(_call_g).__name__"))
  end)
end)

describe("Lua errors crossing Python", function()
  it("surface in Python as pyasync.LuaError with message and Lua traceback", function()
    py.main._call_f = function() error("lua boom") end
    py.exec([[
from pyasync import LuaError
try:
    _call_f()
except LuaError as e:
    _call_r = (str(e), e.lua_traceback, isinstance(e, Exception))
]])
    local r = py.main._call_r
    assert.is_truthy(r[0]:find("lua boom", 1, true))
    assert.is_truthy(r[1]:find("stack traceback", 1, true))
    assert.is_true(r[2])
  end)

  it("py.LuaError is that class", function()
    assert.is_true(py.is(py.LuaError, py.import("pyasync").LuaError))
    assert.is_true(py.eval("issubclass(c, Exception)", py.dict{c = py.LuaError}))
  end)

  it("propagate back into Lua as the very same value", function()
    local err = {code = 7}
    local ok, e = pcall(apply, function() error(err) end)
    assert.is_false(ok)
    assert.is_true(rawequal(err, e))
    ok, e = pcall(py.exec, "_call_f()")
    assert.is_false(ok)
    assert.is_truthy(e:find("lua boom", 1, true))
  end)

  it("keep a non-string error value's type", function()
    local ok, e = pcall(apply, function() error(42) end)
    assert.is_false(ok)
    assert.are.equal("integer", math.type(e))
    assert.are.equal(42, e)
    ok, e = pcall(apply, function() error(1.5) end)
    assert.is_false(ok)
    assert.are.equal(1.5, e)
    ok, e = pcall(apply, function() error(false) end)
    assert.is_false(ok)
    assert.are.equal(false, e)
    ok, e = pcall(apply, function() error(nil) end)
    assert.is_false(ok)
    assert.is_nil(e)
  end)

  it("a message that is not UTF-8 still makes a LuaError", function()
    py.main._call_f = function() error("\xff bad", 0) end
    py.exec([[
from pyasync import LuaError
try:
    _call_f()
except LuaError as e:
    _call_r = str(e)
]])
    assert.are.equal("\u{FFFD} bad", py.main._call_r)
    local ok, e = pcall(apply, py.main._call_f)
    assert.is_false(ok)
    assert.are.equal("\xff bad", e)
  end)

  it("a LuaError Python handles and replaces becomes a PyError", function()
    py.main._call_f = function() error("inner") end
    local ok, e = pcall(py.exec, [[
from pyasync import LuaError
try:
    _call_f()
except LuaError as e:
    raise RuntimeError("outer: " + str(e))
]])
    assert.is_false(ok)
    assert.are.equal("RuntimeError", e.type)
    assert.is_truthy(e.message:find("outer: .*inner"))
  end)

  it("an error table with an odd __name does not confuse the bridge", function()
    local err = setmetatable({}, {__name = {}})
    local ok, e = pcall(apply, function() error(err) end)
    assert.is_false(ok)
    assert.is_true(rawequal(err, e))
    err = setmetatable({}, {__name = "PyError"})
    ok, e = pcall(apply, function() error(err) end)
    assert.is_false(ok)
    assert.is_true(rawequal(err, e))
  end)

  it("a PyError whose exception was released still comes back", function()
    local ok, pe = pcall(py.eval, "1/0")
    assert.is_false(ok)
    py.release(pe.exception)
    local e
    ok, e = pcall(apply, function() error(pe) end)
    assert.is_false(ok)
    assert.is_true(rawequal(pe, e))
    assert.is_false(py._core._gil_held())
  end)
end)
