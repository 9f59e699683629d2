-- buffer_spec.lua - py.buffer and py.array (API.md section 7): Views over
-- Python buffers without copying, bounds and type checks, pinning, and
-- Lua-owned arrays shared with numpy whichever side lets go first.
local py = require "pyasync"
local support = require "support"

local np = py.import "numpy"
local kw = py.kw

py.exec[[
import numpy as np, array, sys, ctypes
def sl(a, index):
    return eval(f"a[{index}]", {"a": a})
]]
local M = py.main

local err_of = support.err_of

-- Live memory blocks and DLPack capsules, once garbage and deferred
-- releases are gone.
local function stats()
  collectgarbage()
  collectgarbage()
  py.eval("0")
  return py._buffer_stats()
end

describe("py.buffer", function()
  it("reads and writes a 1-D numpy array in place", function()
    local a = np.arange(5, kw{dtype = "float64"})
    local v = py.buffer(a)
    assert.are.equal(1, v.ndim)
    assert.are.equal("d", v.format)
    assert.are.equal(8, v.itemsize)
    assert.are.equal(40, v.nbytes)
    assert.are.equal(5, #v)
    assert.are.same({5}, v.shape)
    assert.are.same({8}, v.strides)
    assert.is_false(v.readonly)
    assert.are.equal(0.0, v[1])
    assert.are.equal(4.0, v[5])
    assert.is_true(math.type(v[2]) == "float")
    v[2] = 42
    assert.are.equal(42.0, py.eval("float(a[1])", py.dict{a = a}))
    v:set(3, 7.5)
    assert.are.equal(7.5, v:get(3))
    assert.are.equal(7.5, py.builtins.float(py.item(a, 2)))
    v:release()
  end)

  it("indexes 2-D arrays by row and column", function()
    local a = np.arange(6, kw{dtype = "int32"}):reshape(2, 3)
    local v = py.buffer(a)
    assert.are.equal(2, v.ndim)
    assert.are.same({2, 3}, v.shape)
    assert.are.same({12, 4}, v.strides)
    assert.are.equal(6, #v)
    assert.are.equal(5, v:get(2, 3))
    assert.are.equal(1, v:get(1, 2))
    v:set(2, 1, -9)
    assert.are.equal(-9, py.eval("int(a[1, 0])", py.dict{a = a}))
    assert.are.same({{0, 1, 2}, {-9, 4, 5}}, v:totable())
  end)

  it("follows non-contiguous slices, negative strides and transposes", function()
    local a = np.arange(10, kw{dtype = "int64"})
    local even = py.buffer(M.sl(a, "::2"))
    assert.are.same({5}, even.shape)
    assert.are.same({16}, even.strides)
    assert.are.same({0, 2, 4, 6, 8}, even:totable())
    local rev = py.buffer(M.sl(a, "::-1"))
    assert.are.same({-8}, rev.strides)
    assert.are.equal(9, rev[1])
    assert.are.equal(0, rev[10])
    rev[1] = 100   -- a[9]
    assert.are.equal(100, py.eval("int(a[9])", py.dict{a = a}))
    local m = np.arange(6, kw{dtype = "float32"}):reshape(2, 3)
    local t = py.buffer(m.T)
    assert.are.same({3, 2}, t.shape)
    assert.are.same({4, 12}, t.strides)
    assert.are.equal(3.0, t:get(1, 2))
    assert.are.equal(5.0, t:get(3, 2))
    -- C-order bytes of the logical array, as numpy gives them
    assert.are.equal(py.eval("m.T.tobytes()", py.dict{m = m}), t:tobytes())
    assert.are.equal(py.eval("a[::-1].tobytes()", py.dict{a = a}), rev:tobytes())
    local b = np.arange(12, kw{dtype = "int16"}):reshape(3, 4)
    local sub = py.buffer(M.sl(b, "::-2, 1::2"))
    assert.are.same({2, 2}, sub.shape)
    assert.are.same({{9, 11}, {1, 3}}, sub:totable())
    sub:fill(-1)   -- only the viewed elements change
    assert.are.same({{0, -1, 2, -1}, {4, 5, 6, 7}, {8, -1, 10, -1}},
                    py.totable(b:tolist()))
  end)

  it("reads every supported numpy dtype with the right Lua type", function()
    local cases = {
      {"int8", "b", -5, 127}, {"uint8", "B", 5, 255}, {"int16", "h", -300, 32767},
      {"uint16", "H", 300, 65535}, {"int32", "i", -70000, 2147483647},
      {"uint32", "I", 70000, 4294967295}, {"int64", "l", -2 ^ 40 // 1, math.maxinteger},
      {"uint64", "L", 2 ^ 40 // 1, math.maxinteger}, {"longlong", "q", -1, math.mininteger},
      {"ulonglong", "Q", 1, 7}, {"float16", "e", 1.5, 65504.0}, {"float32", "f", 0.25, -3.5},
      {"float64", "d", 0.1, 1e300}, {"bool", "?", true, false},
    }
    for _, c in ipairs(cases) do
      local dtype, fmt, x, y = c[1], c[2], c[3], c[4]
      local a = np.zeros(2, kw{dtype = dtype})
      local v = py.buffer(a)
      assert.are.equal(fmt, v.format, dtype)
      assert.are.equal(py.eval("a.itemsize", py.dict{a = a}), v.itemsize)
      v[1] = x
      v:set(2, y)
      assert.are.equal(x, v[1], dtype)
      assert.are.equal(y, v[2], dtype)
      assert.are.same(py.totable(a:tolist()), {x, y}, dtype)
      if fmt == "?" then assert.are.equal("boolean", type(v[1]))
      elseif fmt:match("[efd]") then assert.are.equal("float", math.type(v[1]), dtype)
      else assert.are.equal("integer", math.type(v[1]), dtype) end
    end
  end)

  it("converts half floats exactly as numpy does", function()
    -- every float16 bit pattern, decoded
    local bits = np.arange(65536, kw{dtype = "uint16"})
    local h = py.buffer(bits:view("float16"))
    local wide = py.buffer(bits:view("float16"):astype("float64"))
    for i = 1, 65536 do
      local x, y = h[i], wide[i]
      if x ~= y and not (x ~= x and y ~= y) then
        error(("float16 pattern %d: got %s, numpy %s"):format(i - 1, x, y))
      end
    end
    -- doubles rounded to float16: ties, subnormals, overflow
    py.exec[==[
_src = np.concatenate([np.random.default_rng(7).standard_normal(2000) * 10.0 ** np.arange(-9, 11).repeat(100),
                       [65504.0, 65519.99, 65520.0, 1e6, -1e6, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
                        2.0 ** -26, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 0.0, -0.0, float("inf"), -float("inf")]])
with np.errstate(over="ignore"):
    _want = _src.astype(np.float16).view(np.uint16)
_got = np.zeros(len(_src), dtype=np.float16)
]==]
    local src, got = py.buffer(M._src), py.buffer(M._got)
    for i = 1, #src do got[i] = src[i] end
    local bad = py.eval("int((_got.view(np.uint16) != _want).sum())")
    assert.are.equal(0, bad)
  end)

  it("takes the '<' and '=' byte-order prefixes (ctypes, array.array, memoryview)", function()
    local c = py.eval("(ctypes.c_int * 3)(1, 2, 3)")
    local v = py.buffer(c)
    assert.are.equal("<i", v.format)
    assert.are.equal(2, v[2])
    v[3] = 30
    assert.are.equal(30, py.eval("c[2]", py.dict{c = c}))
    local q = py.buffer(py.eval("(ctypes.c_long * 2)(5, -6)"))
    assert.are.equal("<q", q.format)
    assert.are.equal(-6, q[2])
    local arr = py.eval("array.array('h', [1, -2, 3])")
    local av = py.buffer(arr)
    assert.are.equal("h", av.format)
    av[2] = 20
    assert.are.equal(20, py.item(arr, 1))
    local mv = py.buffer(py.eval("memoryview(bytearray(b'abcd')).cast('I')"))
    assert.are.equal(1, #mv)
    assert.are.equal(0x64636261, mv[1])
  end)

  it("makes bytes read-only and honours the mode", function()
    local ro = py.buffer(py.bytes("abc"))
    assert.is_true(ro.readonly)
    assert.are.equal(98, ro[2])
    assert.matches("read%-only View", err_of(ro.set, ro, 1, 0))
    assert.matches("read%-only", err_of(function() ro[1] = 0 end))
    assert.matches("read%-only", err_of(ro.fill, ro, 0))
    local e = err_of(py.buffer, py.bytes("abc"), "w")
    assert.matches("not writable", e)
    local ba = py.builtins.bytearray(3)
    local r = py.buffer(ba, "r")
    assert.is_true(r.readonly)
    assert.matches("read%-only", err_of(function() r[1] = 1 end))
    assert.is_false(py.buffer(ba, "w").readonly)
    assert.matches("invalid option 'x'", err_of(py.buffer, ba, "x"))
    local s = py.buffer("h\255i")   -- a Lua string is viewed as bytes
    assert.are.same({"B", true, 3, 255}, {s.format, s.readonly, #s, s[2]})
    local frozen = np.zeros(3)
    frozen.flags.writeable = false
    assert.is_true(py.buffer(frozen).readonly)
    assert.matches("read%-only", err_of(py.buffer, frozen, "w"))
  end)

  it("pins a bytearray while viewed and lets it resize after release", function()
    local ns = py.dict{ba = py.builtins.bytearray(4)}
    local v = py.buffer(ns.ba)
    local ok, e = pcall(py.exec, "ba.extend(b'x')", ns)
    assert.is_false(ok)
    assert.are.equal("BufferError", e.type)
    v[1] = 65
    v:release()
    py.exec("ba.extend(b'x')", ns)
    assert.are.equal("Axxxx", tostring(py.eval("bytes(ba).replace(b'\\0', b'x').decode()", ns)))
    -- <close> releases at the end of the block
    do
      local _ <close> = py.buffer(ns.ba)
      assert.is_false(pcall(py.exec, "ba.extend(b'y')", ns))
    end
    py.exec("ba.extend(b'y')", ns)
    -- a collected View releases through the deferred list, never waiting for the GIL
    local w = py.buffer(ns.ba)  -- luacheck: ignore 231
    assert.is_false(pcall(py.exec, "ba.extend(b'z')", ns))
    w = nil
    collectgarbage()
    collectgarbage()
    py.exec("ba.extend(b'z')", ns)
    assert.are.equal(7, #ns.ba)
    -- array.array is pinned the same way
    local arr = py.eval("array.array('d', [1.0])")
    local av = py.buffer(arr)
    assert.is_false(pcall(arr.append, arr, 2.0))
    av:release()
    arr:append(2.0)
    assert.are.equal(2, #arr)
  end)

  it("handles 0-D and empty buffers", function()
    local s = py.buffer(np.array(2.5))
    assert.are.equal(0, s.ndim)
    assert.are.equal(1, #s)
    assert.are.same({}, s.shape)
    assert.are.equal(2.5, s:get())
    assert.are.equal(2.5, s:totable())
    assert.matches("0 dimensions", err_of(function() return s[1] end))
    local e = py.buffer(np.zeros(0))
    assert.are.equal(0, #e)
    assert.are.equal("", e:tobytes())
    e:fill(1)
    assert.matches("out of range %(1%.%.0%)", err_of(function() return e[1] end))
  end)

  it("checks every index and every value", function()
    local v = py.buffer(np.zeros(py.tuple(2, 3), kw{dtype = "int8"}))
    assert.matches("index 3 out of range for dimension 1 %(1%.%.2%)", err_of(v.get, v, 3, 1))
    assert.matches("index 0 out of range for dimension 2", err_of(v.get, v, 1, 0))
    assert.matches("index %-1 out of range", err_of(v.get, v, -1, 1))
    assert.matches("2 indexes expected, got 1", err_of(v.get, v, 1))
    assert.matches("2 indexes expected, got 3", err_of(v.get, v, 1, 1, 1))
    assert.matches("2 indexes expected, got 3", err_of(v.set, v, 1, 1, 1, 5))
    assert.matches("value expected", err_of(v.set, v))
    assert.matches("index must be an integer, got 1.5", err_of(v.get, v, 1.5, 1))
    assert.matches("index must be an integer, got string", err_of(v.get, v, "1", 1))
    assert.matches("needs a 1%-D View", err_of(function() return v[1] end))
    assert.matches("needs a 1%-D View", err_of(function() v[1] = 0 end))
    local w = py.buffer(np.zeros(3, kw{dtype = "int8"}))
    assert.matches("index 4 out of range %(1%.%.3%)", err_of(function() return w[4] end))
    assert.matches("index 0 out of range", err_of(function() return w[0] end))
    assert.matches("index 4 out of range", err_of(function() w[4] = 1 end))
    assert.matches("index must be an integer", err_of(function() return w[1.5] end))
    assert.matches("index must be an integer", err_of(function() return w[true] end))
    assert.is_nil(w.no_such_field)
    assert.matches("cannot set field 'x'", err_of(function() w.x = 1 end))
    assert.matches("cannot store 128 in a int8 element: out of range", err_of(function() w[1] = 128 end))
    assert.matches("out of range", err_of(function() w[1] = -129 end))
    assert.matches("no integer representation", err_of(function() w[1] = 2.5 end))
    assert.matches("number expected", err_of(function() w[1] = "3" end))
    assert.matches("number expected", err_of(function() w[1] = nil end))
    assert.matches("number expected", err_of(w.fill, w, {}))
    w[1] = 3.0   -- an integral float is fine, as value and as key
    assert.are.equal(3, w[1])
    w[2.0] = 4
    assert.are.equal(4, w[2.0])
    assert.matches("index 4 out of range", err_of(function() return w[4.0] end))
    local u = py.buffer(np.zeros(1, kw{dtype = "uint8"}))
    assert.matches("out of range", err_of(function() u[1] = -1 end))
    assert.matches("out of range", err_of(function() u[1] = 256 end))
    local b = py.buffer(np.zeros(1, kw{dtype = "bool"}))
    assert.matches("boolean expected", err_of(function() b[1] = 1 end))
    local big = py.buffer(np.zeros(1, kw{dtype = "uint64"}))
    big[1] = 2.0 ^ 63   -- beyond Lua integers: stored exactly, read back wrapped
    assert.are.equal("9223372036854775808", tostring(py.eval("int(a[0])", py.dict{a = big})))
    assert.are.equal(math.mininteger, big[1])
    assert.matches("out of range", err_of(function() big[1] = -1 end))
  end)

  it("refuses unsupported formats with a clear error", function()
    assert.matches("unsupported buffer format 'Zd'", err_of(py.buffer, np.zeros(2, kw{dtype = "complex128"})))
    assert.matches("unsupported buffer format 'T{i:x:}'",
                   err_of(py.buffer, np.zeros(2, kw{dtype = py.eval("[('x', 'i4')]")})))
    assert.matches("unsupported buffer format '>i'", err_of(py.buffer, np.zeros(2, kw{dtype = ">i4"})))
    assert.matches("unsupported buffer format 'w'", err_of(py.buffer, py.eval("array.array('u', 'ab')")))
    assert.matches("Python object expected", err_of(py.buffer, {}))
    local e = err_of(py.buffer, py.eval("object()"))
    assert.matches("bytes%-like object is required", e)
  end)

  it("raises on a released View and keeps release idempotent", function()
    local v = py.buffer(np.zeros(3))
    v:release()
    v:release()
    assert.matches("released View", err_of(function() return v[1] end))
    assert.matches("released View", err_of(function() v[1] = 1 end))
    assert.matches("released View", err_of(v.get, v, 1))
    assert.matches("released View", err_of(v.tobytes, v))
    assert.matches("released View", err_of(v.ptr, v))
    assert.matches("released View", err_of(function() return #v end))
    assert.matches("released View", err_of(function() return v.shape end))
    assert.matches("released View", err_of(py.builtins.len, v))
    assert.are.equal("pyasync.View (released)", tostring(v))
  end)

  it("gives the data address and passes back as the original object", function()
    local a = np.arange(3.0)
    local v = py.buffer(a)
    assert.are.equal("userdata", type(v:ptr()))
    local addr = py.eval("a.ctypes.data", py.dict{a = a})
    assert.are.equal(("%x"):format(addr), tostring(v:ptr()):match("0x(%x+)"):gsub("^0+", ""))
    assert.is_true(py.is(v, a))
    assert.matches("pyasync.View%(d, 3%)", tostring(v))
  end)
end)

describe("py.array", function()
  it("makes zeroed or filled Lua-owned memory", function()
    local z = py.array("i", 4)
    assert.are.equal(4, #z)
    assert.are.equal(0, z[1])
    assert.are.equal("i", z.format)
    assert.are.equal(4, z.itemsize)
    local a = py.array("d", {1, 2, 3})
    assert.are.same({1.0, 2.0, 3.0}, a:totable())
    assert.are.equal("f", py.array("float32", 1).format)
    assert.are.equal(4, py.array("<l", 1).itemsize)   -- standard size
    assert.are.equal("i", py.array("=l", 1).format)
    assert.are.equal("d", py.array("@d", 1).format)
    assert.are.same({true, false}, py.array("?", {true, false}):totable())
    assert.are.equal(0, #py.array("B", {}))
    assert.matches("unsupported format 'x'", err_of(py.array, "x", 3))
    assert.matches("unsupported format 'Zd'", err_of(py.array, "Zd", 3))
    assert.matches("negative size", err_of(py.array, "d", -1))
    assert.matches("element 2: number expected", err_of(py.array, "d", {1, "x"}))
    assert.matches("element 1: out of range", err_of(py.array, "B", {300}))
    assert.matches("too many", err_of(py.array, "d", math.maxinteger))
  end)

  it("shares its memory with numpy both ways", function()
    local a = py.array("d", {1, 2, 3})
    local n = np.asarray(a)
    assert.are.equal("float64", tostring(n.dtype))
    n[0] = 10
    assert.are.equal(10.0, a[1])
    a[3] = -1
    assert.are.equal(-1.0, py.eval("float(n[2])", py.dict{n = n}))
    local mv = py.builtins.memoryview(a)
    assert.are.equal("d", mv.format)
    assert.is_false(mv.readonly)
    assert.are.equal("Array", py.type(a))
    assert.matches("cannot create", err_of(py.eval("__import__('pyasync').Array")))
    assert.is_true(py.is(a, a))   -- one Python face per array
  end)

  it("survives the Lua side being dropped first", function()
    local base = stats().blocks
    local a = py.array("d", {1, 2, 3})
    M._n = np.asarray(a)
    assert.are.equal(base + 1, stats().blocks)
    a = nil  -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.are.equal(6.0, py.eval("float(_n.sum())"))
    py.exec("_n[0] = 5")
    assert.are.equal(10.0, py.eval("float(_n.sum())"))
    assert.are.equal(base + 1, stats().blocks)
    py.exec("del _n")
    assert.are.equal(base, stats().blocks)
  end)

  it("survives the Python side being dropped first", function()
    local base = stats().blocks
    local a = py.array("i", {7, 8})
    local n = np.asarray(a)  -- luacheck: ignore 231
    py.exec("import gc")
    n = nil
    collectgarbage()
    collectgarbage()
    py.eval("gc.collect()")
    assert.are.equal(base + 1, stats().blocks)
    assert.are.equal(8, a[2])
    a:release()
    assert.are.equal(base, stats().blocks)
  end)

  it("exports C-contiguous memory only as asked", function()
    local a = py.array("h", {1, 2, 3})
    py.exec[[
def probe(a):
    m = memoryview(a)
    return m.c_contiguous, m.f_contiguous, m.ndim, m.shape, m.strides, m.itemsize, bytes(m)
]]
    local r = py.totable(M.probe(a))
    assert.are.same({true, true, 1, {3}, {2}, 2}, {r[1], r[2], r[3], r[4], r[5], r[6]})
    assert.are.equal("\1\0\2\0\3\0", r[7])
  end)

  it("leaves nothing behind", function()
    collectgarbage()
    collectgarbage()
    assert.is_true(support.drained())
  end)
end)
