-- object_spec.lua - proxies (API.md section 3): attributes and items,
-- method sugar, length, strings, comparison and arithmetic metamethods,
-- pairs and py.iter, py.type/isinstance/is.
local py = require "pyasync"

py.exec([[
class _ObjNS:
    pass
]])

local function collect_pairs(o)
  local ks, vs = {}, {}
  for k, v in pairs(o) do
    ks[#ks + 1] = k
    vs[#vs + 1] = v == nil and "nil" or v
  end
  return ks, vs
end

describe("attributes", function()
  it("gets and sets attributes with obj.name", function()
    local o = py.main._ObjNS()
    o.x = 5
    assert.are.equal(5, o.x)
    assert.is_true(py.eval("o.x == 5", py.dict{o = o}))
    o.x = "s"
    assert.are.equal("s", o.x)
    o.x = nil  -- nil becomes None; the attribute stays
    assert.is_nil(o.x)
    assert.is_true(py.hasattr(o, "x"))
  end)

  it("raises AttributeError for a missing attribute", function()
    local ok, e = pcall(function() return py.main._ObjNS().nope end)
    assert.is_false(ok)
    assert.are.equal("AttributeError", e.type)
  end)

  it("has explicit getattr/setattr/hasattr", function()
    local o = py.main._ObjNS()
    assert.is_false(py.hasattr(o, "y"))
    py.setattr(o, "y", {1, 2})
    assert.is_true(py.hasattr(o, "y"))
    assert.are.equal("list", py.type(py.getattr(o, "y")))
    assert.are.equal(2, py.getattr(o, "y")[1])
    -- names Lua syntax cannot write as obj.name
    py.setattr(o, "end", 3)
    assert.are.equal(3, py.getattr(o, "end"))
    local ok, e = pcall(py.getattr, o, "missing")
    assert.is_false(ok)
    assert.are.equal("AttributeError", e.type)
  end)

  it("takes names whole, NUL bytes included", function()
    local o = py.main._ObjNS()
    py.setattr(o, "a\0b", 1)
    assert.are.equal(1, py.getattr(o, "a\0b"))
    assert.is_false(py.hasattr(o, "a"))
    assert.is_true(py.eval("getattr(o, 'a\\x00b') == 1", py.dict{o = o}))
    local ok, e = pcall(py.getattr, o, "\xff")  -- not UTF-8: bytes, no name
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
  end)
end)

describe("dicts", function()
  it("look up an item first, then an attribute", function()
    local d = py.eval("{'keys': 1, 'a': 'x'}")
    assert.are.equal(1, d.keys)     -- the item, not the method
    assert.are.equal("x", d.a)
    local e = py.eval("{'a': 1}")
    assert.are.equal("builtin_function_or_method", py.type(e.keys))
    assert.are.equal("dict_keys", py.type(e:keys()))
    assert.are.equal(1, e:get("a"))
    assert.are.equal(2, e:get("b", 2))
  end)

  it("set items with d.name = v and d[k] = v", function()
    local d = py.dict{}
    d.name = "v"
    d[1] = "one"
    d[2.5] = nil
    assert.is_true(py.eval("d == {'name': 'v', 1: 'one', 2.5: None}", py.dict{d = d}))
    assert.are.equal("v", d.name)
    assert.are.equal("v", d["name"])
    assert.are.equal("one", d[1])
    assert.is_nil(d[2.5])
  end)

  it("take a string key that is not UTF-8 as bytes, as conversion does", function()
    local d = py.eval("{b'\\xff': 1, 'x': 2}")
    assert.are.equal(1, d["\xff"])
    assert.are.equal(2, d["x"])
    d["\xfe"] = 3
    assert.is_true(py.eval("d[b'\\xfe'] == 3", py.dict{d = d}))
  end)

  it("raise for a key neither item nor attribute", function()
    local ok, e = pcall(function() return py.dict{}.missing end)
    assert.is_false(ok)
    assert.are.equal("AttributeError", e.type)
  end)

  it("have explicit item/setitem/delitem", function()
    local d = py.dict{}
    py.setitem(d, "k", 1)
    py.setitem(d, 2, "two")
    assert.are.equal(1, py.item(d, "k"))
    assert.are.equal("two", py.item(d, 2))
    py.delitem(d, "k")
    local ok, e = pcall(py.item, d, "k")
    assert.is_false(ok)
    assert.are.equal("KeyError", e.type)
    assert.are.equal(1, #d)
  end)
end)

describe("indexing", function()
  it("indexes lists 0-based, negatives from the end", function()
    local l = py.eval("[10, 20, 30]")
    assert.are.equal(10, l[0])
    assert.are.equal(30, l[2])
    assert.are.equal(30, l[-1])
    assert.are.equal(10, l[-3])
    l[0] = 11
    l[-1] = 33
    assert.is_true(py.eval("l == [11, 20, 33]", py.dict{l = l}))
    assert.are.equal(20, py.item(l, 1))
    py.delitem(l, 0)
    assert.are.equal(2, #l)
  end)

  it("raises IndexError out of range", function()
    local l = py.eval("[1]")
    local ok, e = pcall(function() return l[1] end)
    assert.is_false(ok)
    assert.are.equal("IndexError", e.type)
    ok, e = pcall(function() l[5] = 0 end)
    assert.is_false(ok)
    assert.are.equal("IndexError", e.type)
  end)

  it("indexes with tuples and proxies as keys", function()
    local d = py.eval("{(1, 2): 'pair'}")
    assert.are.equal("pair", d[py.tuple(1, 2)])
    local np = py.import("numpy")
    local a = np.arange(6):reshape(2, 3)
    assert.are.equal(5, a[py.tuple(1, 2)]:item())
  end)
end)

describe("methods", function()
  it("obj:meth() does not pass the receiver twice", function()
    local l = py.eval("[3, 1, 2]")
    assert.is_nil(l:sort())
    assert.is_true(py.eval("l == [1, 2, 3]", py.dict{l = l}))
    l:append(4)
    assert.are.equal(4, #l)
    local sb = py.import("io").StringIO()
    sb:write("x")
    sb:write("yz")
    assert.are.equal("xyz", sb:getvalue())
  end)

  it("obj.meth(a) is the same call", function()
    local l = py.eval("[]")
    l.append(1)
    assert.are.equal(1, #l)
    assert.are.equal("ABC", py.builtins.str.upper("abc"))
  end)

  it("obj.meth(obj) reads as obj:meth(); py.call passes the receiver", function()
    local l = py.eval("[1]")
    py.call(l.append, {l})
    assert.are.equal(2, #l)
    assert.is_true(py.is(l[1], l))
  end)
end)

describe("length, strings, comparison", function()
  it("#obj is len(obj)", function()
    assert.are.equal(3, #py.eval("[1, 2, 3]"))
    assert.are.equal(0, #py.eval("{}"))
    assert.are.equal(5, #py.eval("range(5)"))
    local ok, e = pcall(function() return #py.eval("object()") end)
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
  end)

  it("tostring(obj) is str(obj)", function()
    assert.are.equal("[1, 'a', None]", tostring(py.eval("[1, 'a', None]")))
    assert.are.equal("{'k': 2}", tostring(py.eval("{'k': 2}")))
    assert.are.equal("None", tostring(py.None))
  end)

  it("== compares with Python ==", function()
    local a, b = py.eval("[1, 2]"), py.eval("[1, 2]")
    assert.is_true(a == b)
    assert.is_false(rawequal(a, b))
    assert.is_false(a == py.eval("[1]"))
    assert.is_true(py.main == py.import("__main__"))
  end)

  it("< and <= compare with Python, also mixed with numbers", function()
    local F = py.import("fractions").Fraction
    local third = F(1, 3)
    assert.is_true(third < F(1, 2))
    assert.is_true(third <= F(1, 3))
    assert.is_false(third < F(1, 3))
    assert.is_true(third < 1)
    assert.is_true(0 < third)
    assert.is_true(third > 0.3)
    assert.is_false(1 <= third)
    assert.is_true(third >= F(1, 3))
    local big = py.eval("2**70")
    assert.is_true(big > math.maxinteger)
    assert.is_true(math.mininteger < big)
    assert.is_true(py.eval("[1, 2]") < py.eval("[1, 3]"))
  end)

  it("== with a Lua number is false: Lua calls __eq for two userdata only", function()
    local one = py.import("fractions").Fraction(1)
    assert.is_false(one == 1)
    assert.is_true(one <= 1 and one >= 1)
  end)

  it("a comparison Python refuses raises TypeError", function()
    local ok, e = pcall(function() return py.eval("object()") < 1 end)
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
  end)
end)

describe("arithmetic", function()
  local F = py.import("fractions").Fraction

  it("does + - * / // % ^ and unary - with Python operators", function()
    local a = F(1, 3)
    assert.are.equal("2/3", tostring(a + a))
    assert.are.equal("4/3", tostring(a + 1))
    assert.are.equal("2/3", tostring(1 - a))
    assert.are.equal("-1/6", tostring(a - F(1, 2)))
    assert.are.equal("1", tostring(a * 3))
    assert.are.equal("1/6", tostring(a / 2))
    assert.are.equal(3, F(7, 2) // 1)
    assert.are.equal("1/2", tostring(F(7, 2) % 1))
    assert.are.equal("1/9", tostring(a ^ 2))
    assert.are.equal("-1/3", tostring(-a))
    local D = py.import("decimal").Decimal
    assert.are.equal("3.3", tostring(D("1.1") + D("2.2")))
  end)

  it("keeps big ints exact", function()
    local big = py.eval("2**70")
    assert.are.equal("1180591620717411303423", tostring(big - 1))
    assert.are.equal("1393796574908163946345982392040522594123776", tostring(big ^ 2))
    assert.are.equal(2.0 ^ 70, big / 1)  -- true division gives a float
    assert.are.equal(0, big % 2)
    assert.are.equal(1024, big // (1 << 60))
    assert.are.equal("-1180591620717411303424", tostring(-big))
  end)

  it("does & | ~ << >> and unary ~", function()
    local big = py.eval("2**70")
    assert.are.equal(0, big & 0xff)
    assert.are.equal("1180591620717411303425", tostring(big | 1))
    assert.are.equal(0, big ~ big)
    assert.are.equal("2361183241434822606848", tostring(big << 1))
    assert.are.equal(1024, big >> 60)
    assert.are.equal("-1180591620717411303425", tostring(~big))
    assert.are.equal(3, 0xff & py.eval("2**64 + 3"))
  end)

  it("works on numpy values", function()
    local np = py.import("numpy")
    local a = np.array({1, 2, 3})
    assert.are.equal("[2 4 6]", tostring(a * 2))
    assert.are.equal("[2 3 4]", tostring(a + 1))
    assert.are.equal("3.0", tostring(np.float32(1.5) * 2))
    assert.is_true(py.eval("bool((x == [1, 4, 9]).all())", py.dict{x = a ^ 2}))
  end)

  it("raises TypeError for unsupported operands", function()
    local ok, e = pcall(function() return py.eval("object()") + 1 end)
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
    ok, e = pcall(function() return F(1) // 0 end)
    assert.is_false(ok)
    assert.are.equal("ZeroDivisionError", e.type)
  end)
end)

describe("iteration", function()
  it("pairs over a mapping gives key, value", function()
    local ks, vs = collect_pairs(py.eval("{'a': 1, 'b': None, 3: 'c'}"))
    assert.are.same({"a", "b", 3}, ks)
    assert.are.same({1, "nil", "c"}, vs)
  end)

  it("pairs over another iterable gives 1-based position, value", function()
    local ks, vs = collect_pairs(py.eval("[10, 20, 30]"))
    assert.are.same({1, 2, 3}, ks)
    assert.are.same({10, 20, 30}, vs)
    ks, vs = collect_pairs(py.eval("(x * x for x in range(3))"))
    assert.are.same({1, 2, 3}, ks)
    assert.are.same({0, 1, 4}, vs)
  end)

  it("pairs keeps a None key as py.None so the loop goes on", function()
    local n, saw_none = 0, false
    for k, v in pairs(py.eval("{None: 1, 'x': 2}")) do
      n = n + 1
      if py.is(k, py.None) then saw_none = v == 1 end
    end
    assert.are.equal(2, n)
    assert.is_true(saw_none)
  end)

  it("py.iter gives the values, None as py.None", function()
    local got = {}
    for v in py.iter(py.eval("[1, None, 'x']")) do got[#got + 1] = v end
    assert.are.equal(3, #got)
    assert.are.equal(1, got[1])
    assert.is_true(py.is(got[2], py.None))
    assert.are.equal("x", got[3])
    local keys = {}
    for k in py.iter(py.eval("{'a': 1}")) do keys[#keys + 1] = k end
    assert.are.same({"a"}, keys)
  end)

  it("py.iter runs a generator lazily", function()
    py.exec("_obj_log = []\ndef _obj_gen():\n    for i in range(3):\n        _obj_log.append(i)\n        yield i")
    for v in py.iter(py.main._obj_gen()) do
      if v == 1 then break end
    end
    assert.are.equal(2, #py.main._obj_log)
  end)

  it("an error while iterating is a PyError", function()
    py.exec("def _obj_bad():\n    yield 1\n    raise KeyError('k')")
    local ok, e = pcall(function()
      for _ in py.iter(py.main._obj_bad()) do end
    end)
    assert.is_false(ok)
    assert.are.equal("KeyError", e.type)
    ok, e = pcall(py.iter, py.eval("object()"))
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
  end)
end)

describe("types and identity", function()
  it("py.type names the Python type, also of Lua values", function()
    assert.are.equal("list", py.type(py.eval("[]")))
    assert.are.equal("module", py.type(py.main))
    assert.are.equal("int", py.type(5))
    assert.are.equal("float", py.type(5.5))
    assert.are.equal("str", py.type("s"))
    assert.are.equal("bytes", py.type("\xff"))
    assert.are.equal("NoneType", py.type(nil))
    assert.are.equal("dict", py.type({a = 1}))
  end)

  it("py.isinstance", function()
    local b = py.builtins
    assert.is_true(py.isinstance(py.eval("[]"), b.list))
    assert.is_false(py.isinstance(py.eval("[]"), b.dict))
    assert.is_true(py.isinstance(py.eval("True"), b.int))
    assert.is_true(py.isinstance(py.eval("{}"), py.tuple(b.list, b.dict)))
    assert.is_true(py.isinstance(5, b.int))
    assert.is_true(py.isinstance("s", b.str))
    local ok, e = pcall(py.isinstance, py.eval("[]"), py.eval("3"))
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("Python object expected", 1, true))
    ok, e = pcall(py.isinstance, py.eval("[]"), py.eval("[]"))
    assert.is_false(ok)
    assert.are.equal("TypeError", e.type)
  end)

  it("py.is is identity", function()
    local l = py.eval("[]")
    assert.is_true(py.is(l, l))
    assert.is_false(py.is(l, py.eval("[]")))
    assert.is_true(py.is(py.main, py.import("__main__")))
    assert.is_true(py.is(nil, py.None))
    assert.is_true(py.is(py.builtins.len, py.eval("len")))
  end)
end)
