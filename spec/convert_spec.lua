-- convert_spec.lua - values crossing the boundary (API.md section 2), both
-- ways: strings and bytes, integer limits, big ints, floats, booleans, nil,
-- tables to list/dict, cycles, forced kinds, and py.totable.
local py = require "pyasync"

-- A Python function that reports type name and repr of what it receives.
py.exec([[
def _conv_seen(x):
    return type(x).__name__, repr(x)
]])

local function seen(v)
  local r = py.main._conv_seen(v)
  return r[0], r[1]
end

describe("Lua to Python", function()
  it("passes nil as None and booleans as bool", function()
    assert.are.same({"NoneType", "None"}, {seen(nil)})
    assert.are.same({"bool", "True"}, {seen(true)})
    assert.are.same({"bool", "False"}, {seen(false)})
  end)

  it("passes integers as int and floats as float", function()
    assert.are.same({"int", "42"}, {seen(42)})
    assert.are.same({"float", "42.0"}, {seen(42.0)})
    assert.are.same({"float", "0.5"}, {seen(0.5)})
    assert.are.same({"float", "inf"}, {seen(math.huge)})
    assert.are.same({"float", "nan"}, {seen(0/0)})
  end)

  it("keeps the int64 limits exact", function()
    assert.are.same({"int", "9223372036854775807"}, {seen(math.maxinteger)})
    assert.are.same({"int", "-9223372036854775808"}, {seen(math.mininteger)})
    py.main._conv_x = math.maxinteger
    assert.is_true(py.eval("_conv_x == 2**63 - 1"))
    py.main._conv_x = math.mininteger
    assert.is_true(py.eval("_conv_x == -2**63"))
  end)

  it("passes valid UTF-8 as str and anything else as bytes", function()
    assert.are.same({"str", "'abc'"}, {seen("abc")})
    assert.are.same({"str", "'h\u{e9}llo \u{20ac}'"}, {seen("h\u{e9}llo \u{20ac}")})
    assert.are.same({"str", "''"}, {seen("")})
    assert.are.same({"bytes", [[b'\xff\xfe']]}, {seen("\xff\xfe")})
    assert.are.same({"bytes", [[b'ab\xc3']]}, {seen("ab\xc3")})  -- truncated sequence
    assert.are.same({"str", [['a\x00b']]}, {seen("a\0b")})       -- NUL is valid UTF-8
  end)

  it("turns a table with exactly the keys 1..n into a list", function()
    assert.are.same({"list", "[]"}, {seen({})})
    assert.are.same({"list", "[1, 'two', 3.5]"}, {seen({1, "two", 3.5})})
  end)

  it("turns any other table into a dict", function()
    assert.are.same({"dict", "{'a': 1}"}, {seen({a = 1})})
    -- a hole: keys 1, 2, 4 are not exactly 1..n
    py.main._conv_x = {1, 2, nil, 4}
    assert.is_true(py.eval("_conv_x == {1: 1, 2: 2, 4: 4}"))
    assert.are.same({"dict", "{0: 'z'}"}, {seen({[0] = "z"})})
    assert.are.same({"dict", "{2: 'b'}"}, {seen({[2] = "b"})})
    assert.are.same({"dict", "{1.5: 'x'}"}, {seen({[1.5] = "x"})})
    py.main._conv_x = {1, 2, x = 3}
    assert.is_true(py.eval("_conv_x == {1: 1, 2: 2, 'x': 3}"))
  end)

  it("converts nested tables recursively", function()
    assert.is_true(py.eval("x == {'a': [1, {'b': [True, None]}], 'c': []}",
      py.dict{x = {a = {1, {b = {true, py.None}}}, c = {}}}))
  end)

  it("uses py.None for None where Lua cannot hold nil", function()
    assert.are.same({"list", "[1, None, 3]"}, {seen({1, py.None, 3})})
    assert.are.same({"dict", "{'k': None}"}, {seen({k = py.None})})
    assert.are.same({"NoneType", "None"}, {seen(py.None)})
  end)

  it("refuses a cyclic table instead of hanging", function()
    local t = {1, 2}
    t[3] = t
    local ok, e = pcall(seen, t)
    assert.is_false(ok)
    assert.is_true(py.iserror(e, "ValueError"))
    assert.is_truthy(e.message:find("cyclic", 1, true))
    local a, b = {}, {}
    a.b, b.a = b, a
    ok, e = pcall(seen, a)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("cyclic", 1, true))
  end)

  it("accepts shared acyclic subtables, keeping the aliasing", function()
    local s = {1, 2}
    py.main._conv_x = {s, s, {inner = s}}
    assert.is_true(py.eval("_conv_x == [[1, 2], [1, 2], {'inner': [1, 2]}]"))
    assert.is_true(py.eval("_conv_x[0] is _conv_x[1] is _conv_x[2]['inner']"))
  end)

  it("converts a deeply shared DAG in linear time", function()
    local t = {}
    for _ = 1, 80 do t = {t, t} end  -- 2^80 paths, 81 distinct tables
    py.main._conv_x = t
    assert.are.equal(2, py.eval("len(_conv_x)"))
  end)

  it("refuses keys that collide in Python instead of dropping a value", function()
    local ok, e = pcall(seen, {[1] = "a", [true] = "b"})
    assert.is_false(ok)
    assert.is_true(py.iserror(e, "ValueError"))
  end)

  it("passes a proxy as the object it holds", function()
    local o = py.eval("object()")
    py.main._conv_x = o
    assert.is_true(py.is(o, py.main._conv_x))
    assert.is_true(py.eval("_conv_x is _conv_y", py.dict{_conv_x = o, _conv_y = o}))
  end)

  it("passes a Lua function as a Python callable", function()
    assert.are.equal("LuaFunction", (seen(function() end)))
    assert.is_true(py.eval("callable(f)", py.dict{f = print}))
  end)

  it("refuses Lua values Python cannot hold", function()
    local ok, e = pcall(seen, coroutine.create(function() end))
    assert.is_false(ok)
    assert.is_true(py.iserror(e, "TypeError"))
    assert.is_truthy(e.message:find("thread", 1, true))
    ok, e = pcall(seen, io.stdout)  -- a userdata that is no proxy
    assert.is_false(ok)
    assert.is_true(py.iserror(e, "TypeError"))
  end)
end)

describe("forcing a kind", function()
  it("py.bytes makes bytes even of valid UTF-8", function()
    local b = py.bytes("abc")
    assert.are.equal("bytes", py.type(b))
    assert.are.same({"bytes", "b'abc'"}, {seen(b)})
    assert.are.equal(3, #b)
    assert.are.equal("bytes", py.type(py.bytes(py.eval("bytearray(b'xy')"))))
  end)

  it("py.list makes a list", function()
    local l = py.list({1, 2, 3})
    assert.are.equal("list", py.type(l))
    assert.are.equal(3, #l)
    assert.are.equal("list", py.type(py.list({})))
    assert.is_true(py.eval("x == ['a', 'b']", py.dict{x = py.list(py.eval("('a', 'b')"))}))
  end)

  it("py.dict makes a dict, also of an empty or sequence table", function()
    assert.are.equal("dict", py.type(py.dict{}))
    assert.are.equal(0, #py.dict{})
    assert.are.equal(0, #py.dict())
    assert.is_true(py.eval("x == {1: 'a', 2: 'b'}", py.dict{x = py.dict{"a", "b"}}))
    assert.is_true(py.eval("x == {'k': 1}", py.dict{x = py.dict{k = 1}}))
    -- a proxy: what dict(x) gives (a copy, or pairs)
    local d = py.eval("{'a': 1}")
    local c = py.dict(d)
    assert.is_false(py.is(c, d))
    assert.is_true(c == d)
    assert.is_true(py.eval("x == {'a': 1}", py.dict{x = py.dict(py.eval("[('a', 1)]"))}))
  end)

  it("py.tuple makes a tuple of its arguments, nil as None", function()
    local t = py.tuple(1, nil, "x")
    assert.are.equal("tuple", py.type(t))
    assert.is_true(py.eval("x == (1, None, 'x')", py.dict{x = t}))
    assert.are.equal(0, #py.tuple())
  end)
end)

describe("Python to Lua", function()
  it("returns None as nil and bool as boolean", function()
    assert.is_nil(py.eval("None"))
    assert.are.equal(true, py.eval("True"))
    assert.are.equal(false, py.eval("False"))
  end)

  it("returns int as integer when it fits 64 bits", function()
    assert.are.equal(math.maxinteger, py.eval("2**63 - 1"))
    assert.are.equal(math.mininteger, py.eval("-2**63"))
    assert.are.equal("integer", math.type(py.eval("7")))
    assert.are.equal(1, py.eval("True + 0"))
  end)

  it("returns a bigger int as a proxy that stays exact", function()
    local big = py.eval("2**70")
    assert.are.equal("userdata", type(big))
    assert.are.equal("int", py.type(big))
    assert.are.equal("1180591620717411303424", tostring(big))
    assert.are.equal("1180591620717411303425", tostring(big + 1))
    assert.are.equal("2361183241434822606848", tostring(big * 2))
    assert.is_true(py.eval("x == 2**70", py.dict{x = big}))
    assert.are.equal("userdata", type(py.eval("-2**63 - 1")))
    -- back under 64 bits, arithmetic gives a Lua integer again
    assert.are.equal(1, big // big)
    assert.are.equal(0, big - big)
  end)

  it("returns floats as floats", function()
    assert.are.equal("float", math.type(py.eval("1.0")))
    assert.are.equal(0.1, py.eval("0.1"))
    assert.are.equal(math.huge, py.eval("float('inf')"))
    local nan = py.eval("float('nan')")
    assert.is_true(nan ~= nan)
  end)

  it("returns str and bytes as Lua strings", function()
    assert.are.equal("h\u{e9}llo", py.eval("'h\\xe9llo'"))
    assert.are.equal("\xff\0\xfe", py.eval("b'\\xff\\x00\\xfe'"))
    assert.are.equal("", py.eval("''"))
    -- a lone surrogate is kept (surrogatepass), not an error
    assert.are.equal("\xed\xb2\x80", py.eval("'\\udc80'"))
  end)

  it("round-trips strings and bytes unchanged", function()
    py.exec("def _conv_id(x):\n    return x")
    for _, s in ipairs({"abc", "\xff\xfe", "", "a\0b", "\u{1F600}"}) do
      assert.are.equal(s, py.main._conv_id(s))
    end
  end)

  it("returns lists, dicts and other objects as proxies", function()
    local l = py.eval("[1, 2, 3]")
    assert.are.equal("userdata", type(l))
    assert.are.equal("list", py.type(l))
    assert.are.equal("dict", py.type(py.eval("{}")))
    assert.are.equal("tuple", py.type(py.eval("(1,)")))
    assert.are.equal("object", py.type(py.eval("object()")))
  end)
end)

describe("py.totable", function()
  it("deep-copies lists, tuples and dicts into Lua tables", function()
    local t = py.totable(py.eval("{'a': [1, (2, 3)], 'b': {'c': 'd'}, 'n': None}"))
    assert.are.same({a = {1, {2, 3}}, b = {c = "d"}}, t)
    assert.are.same({}, py.totable(py.eval("[]")))
  end)

  it("is a copy: changing it leaves Python alone", function()
    local l = py.eval("[1, 2]")
    local t = py.totable(l)
    t[1] = 99
    assert.are.equal(1, l[0])
  end)

  it("leaves other objects as proxies and Lua values as they are", function()
    local t = py.totable(py.eval("[object(), 2**70]"))
    assert.are.equal("object", py.type(t[1]))
    assert.are.equal("int", py.type(t[2]))
    assert.are.equal(5, py.totable(5))
    local lt = {1}
    assert.are.equal(lt, py.totable(lt))
  end)

  it("skips keys no Lua table can hold (None, NaN)", function()
    local t = py.totable(py.eval("{None: 1, float('nan'): 2, 'k': 3}"))
    assert.are.same({k = 3}, t)
  end)

  it("refuses a cyclic Python structure instead of overflowing", function()
    local l = py.eval("[]")
    l:append(l)
    local ok, e = pcall(py.totable, l)
    assert.is_false(ok)
    assert.is_true(py.iserror(e, "ValueError"))
    assert.are.equal(2, py.eval("1 + 1"))
  end)
end)

describe("stock lua5.4 and the host both", function()
  it("import asyncio and numpy (extension modules resolve libpython)", function()
    assert.are.equal("module", py.type(py.import("asyncio")))
    local np = py.import("numpy")
    assert.are.equal("6", tostring(np.arange(4):sum()))
    assert.are.equal(6, np.arange(4):sum():item())
  end)
end)
