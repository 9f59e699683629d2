-- dlpack_spec.lua - py.from_dlpack and the __dlpack__ of Views and Tensors
-- (API.md section 7): memory shared with numpy and torch, the producer's
-- deleter run exactly once, devices Lua cannot read, and no copies.
local py = require "pyasync"
local support = require "support"

local np = py.import "numpy"
local torch = py.import "torch"
local kw = py.kw
local M = py.main

-- A DLPack producer built with ctypes: any device, any pointer, and a
-- deleter that counts its calls.
py.exec[[
import ctypes, sys, gc
import numpy as np

class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]

class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]

class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]

class DLManagedTensor(ctypes.Structure):
    pass

DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                            ("deleter", DELETER)]

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

deleted = []
_alive = {}

@DELETER
def _deleter(p):
    addr = ctypes.addressof(p.contents)
    deleted.append(addr)
    _alive.pop(addr, None)

class Fake:
    """Hands out DLManagedTensors for a pointer we never dereference."""
    def __init__(self, device=(2, 0), shape=(2, 3), data=0x10000, dtype=(2, 32, 1),
                 strides=None, name=b"dltensor", byte_offset=0):
        self.device, self.shape, self.data, self.dtype = device, shape, data, dtype
        self.strides, self.name, self.byte_offset = strides, name, byte_offset

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None):
        mt = DLManagedTensor()
        shape = (ctypes.c_int64 * len(self.shape))(*self.shape)
        strides = (ctypes.c_int64 * len(self.shape))(*self.strides) if self.strides else None
        t = mt.dl_tensor
        t.data, t.device, t.ndim = self.data, DLDevice(*self.device), len(self.shape)
        t.dtype, t.shape, t.byte_offset = DLDataType(*self.dtype), shape, self.byte_offset
        if strides:
            t.strides = strides
        mt.deleter = _deleter
        _alive[ctypes.addressof(mt)] = (mt, shape, strides)
        return _capsule_new(ctypes.addressof(mt), self.name, None)

class Twice:
    """A broken producer that hands out the same capsule every time."""
    def __init__(self, obj):
        self.cap = obj.__dlpack__()
    def __dlpack__(self, stream=None):
        return self.cap

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name = ctypes.pythonapi.PyCapsule_SetName
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]

def consume_like_c(cap):
    """What a C consumer does: take the tensor, rename the capsule; the
    returned function calls the deleter, which ctypes runs without the GIL."""
    p = _get_pointer(cap, b"dltensor")
    _set_name(cap, b"used_dltensor")
    mt = ctypes.cast(p, ctypes.POINTER(DLManagedTensor))
    return lambda: mt.contents.deleter(mt)

def delete_without_gil(deleter, x):
    before = sys.getrefcount(x)
    deleter()
    return before - sys.getrefcount(x)

def dlpack(x, **kw):
    return x.__dlpack__(**kw)

def refcount(x):
    return sys.getrefcount(x)
]]

local err_of = support.err_of

local function stats()
  collectgarbage()
  collectgarbage()
  py.eval("gc.collect()")
  return py._buffer_stats()
end

local function ndeleted() return py.eval("len(deleted)") end

-- sys.getrefcount once Lua's garbage (bound-method proxies...) is gone.
local function refs(x)
  collectgarbage()
  collectgarbage()
  return M.refcount(x)
end

describe("py.from_dlpack", function()
  it("shares a numpy array's memory", function()
    local x = np.arange(6, kw{dtype = "float32"}):reshape(2, 3)
    local t <close> = py.from_dlpack(x)
    assert.are.equal("cpu", t.device)
    assert.are.equal("float32", t.dtype)
    assert.are.equal(2, t.ndim)
    assert.are.same({2, 3}, t.shape)
    assert.are.same({3, 1}, t.strides)
    assert.are.equal(0, t.byte_offset)
    assert.are.equal(4, t.itemsize)
    assert.are.equal(6, #t)
    assert.are.equal(5.0, t:get(2, 3))
    t:set(1, 1, 42)
    assert.are.equal(42.0, py.eval("float(x[0, 0])", py.dict{x = x}))
    py.exec("x[1, 2] = -1", py.dict{x = x})
    assert.are.equal(-1.0, t:get(2, 3))
    assert.are.same({{42, 1, 2}, {3, 4, -1}}, t:totable())
    assert.are.equal(py.eval("x.tobytes()", py.dict{x = x}), t:tobytes())
    assert.are.equal(py.eval("x.ctypes.data", py.dict{x = x}),
                     math.tointeger(tonumber(tostring(t:ptr()):match("0x%x+"))))
    assert.matches("pyasync.Tensor%(float32, 2x3, cpu%)", tostring(t))
  end)

  it("indexes torch tensors, writes visible on both sides", function()
    local x = torch.arange(6, kw{dtype = torch.float32})
    local t = py.from_dlpack(x)
    assert.are.equal("cpu", t.device)
    assert.are.equal("float32", t.dtype)
    assert.are.same({6}, t.shape)
    assert.are.same({1}, t.strides)
    assert.are.equal(5.0, t[6])
    t[1] = 9
    assert.are.equal(9.0, x[0]:item())
    x:add_(1)
    assert.are.equal(10.0, t[1])
    assert.are.equal(6.0, t[6])
    -- strided, transposed and offset views of torch memory
    local m = torch.arange(12, kw{dtype = torch.int64}):reshape(3, 4)
    local tt = py.from_dlpack(m:t())
    assert.are.equal("int64", tt.dtype)
    assert.are.same({4, 3}, tt.shape)
    assert.are.same({1, 4}, tt.strides)
    assert.are.equal(9, tt:get(2, 3))   -- m[2][1]
    local row = py.from_dlpack(py.item(m, 1))  -- m[1], an offset view
    assert.are.same({4, 5, 6, 7}, row:totable())
    for _, c in ipairs{{"uint8", 200}, {"int16", -7}, {"float64", 0.5}, {"float16", 1.5}, {"bfloat16", 2.25}} do
      local dt, val = c[1], c[2]
      local a = torch.zeros(2, kw{dtype = torch[dt]})
      local ta = py.from_dlpack(a)
      assert.are.equal(dt, ta.dtype)
      ta[2] = val
      assert.are.equal(val, a[1]:item(), dt)
      assert.are.equal(val, ta[2], dt)
    end
  end)

  it("runs the producer's deleter once, on release or collection", function()
    local x = np.arange(4.0)
    local r0 = refs(x)
    local i0 = stats().imports
    local t = py.from_dlpack(x)
    assert.are.equal(r0 + 1, refs(x))   -- numpy's deleter holds x
    assert.are.equal(i0 + 1, py._buffer_stats().imports)
    t:release()
    assert.are.equal(r0, refs(x))
    t:release()
    assert.are.equal(r0, refs(x))
    assert.are.equal(i0, py._buffer_stats().imports)
    -- collected: the deleter waits for the next GIL holder, then runs
    t = py.from_dlpack(x)  -- luacheck: ignore 311
    assert.are.equal(r0 + 1, refs(x))
    t = nil  -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.are.equal(r0, refs(x))   -- this call drained the deferred list
  end)

  it("counts deleter calls of a foreign producer exactly", function()
    local n0 = ndeleted()
    local f = M.Fake()
    local t = py.from_dlpack(f)
    assert.are.equal(n0, ndeleted())
    local u = py.from_dlpack(f)  -- luacheck: ignore 231
    t:release()
    t:release()
    assert.are.equal(n0 + 1, ndeleted())
    u = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal(n0 + 2, ndeleted())
    assert.are.equal(0, stats().imports)
  end)

  it("exposes non-CPU tensors without indexing them", function()
    local n0 = ndeleted()
    local t = py.from_dlpack(M.Fake(kw{device = py.tuple(2, 1), data = 0xdead0000,
                                       byte_offset = 64, dtype = py.tuple(2, 16, 1)}))
    assert.are.equal("cuda:1", t.device)
    assert.are.equal(2, t.device_type)
    assert.are.equal(1, t.device_id)
    assert.are.equal("float16", t.dtype)
    assert.are.same({2, 3}, t.shape)
    assert.are.same({3, 1}, t.strides)
    assert.are.equal(64, t.byte_offset)
    assert.are.equal(6, #t)
    assert.matches("0x0*dead0000", tostring(t:ptr()))
    assert.matches("device cuda:1: its memory cannot be accessed", err_of(function() return t[1] end))
    assert.matches("device cuda:1", err_of(t.get, t, 1, 1))
    assert.matches("device cuda:1", err_of(t.set, t, 1, 1, 0))
    assert.matches("device cuda:1", err_of(t.fill, t, 0))
    assert.matches("device cuda:1", err_of(t.tobytes, t))
    assert.matches("device cuda:1", err_of(function() t[1] = 0 end))
    assert.matches("cuda:1", tostring(t))
    -- handed back to Python: the same device and pointer, no buffer protocol
    assert.are.same({2, 1}, py.totable(py.eval("lambda t: t.__dlpack_device__()")(t)))
    assert.matches("not CPU memory", err_of(py.builtins.memoryview, t))
    local again = py.from_dlpack(t)
    assert.are.equal("cuda:1", again.device)
    assert.are.equal(tostring(t:ptr()), tostring(again:ptr()))
    assert.are.equal(64, again.byte_offset)
    t:release()
    assert.are.equal(n0, ndeleted())   -- `again` still holds the memory
    again:release()
    assert.are.equal(0, stats().exports)  -- t's Python face let go too
    assert.are.equal(n0 + 1, ndeleted())
    -- device names
    local names = {[1] = "cpu", [3] = "cuda_host", [4] = "opencl:0", [10] = "rocm:0", [13] = "cuda_managed:0", [99] = "device99:0"}
    for dev, name in pairs(names) do
      local d = py.from_dlpack(M.Fake(kw{device = py.tuple(dev, 0), data = 0, shape = py.tuple(0)}))
      assert.are.equal(name, d.device)
    end
  end)

  it("refuses dtypes it cannot index but still shares them", function()
    local c = torch.zeros(2, kw{dtype = torch.complex64})
    local t = py.from_dlpack(c)
    assert.are.equal("complex64", t.dtype)
    assert.are.equal(8, t.itemsize)
    assert.matches("dtype complex64 cannot be indexed", err_of(function() return t[1] end))
    assert.are.equal(16, #t:tobytes())
    local w = py.from_dlpack(M.Fake(kw{device = py.tuple(1, 0), data = 0, shape = py.tuple(0), dtype = py.tuple(2, 32, 4)}))
    assert.are.equal("float32x4", w.dtype)
  end)

  it("rejects a capsule consumed twice and other bad input", function()
    local cap = M.dlpack(np.arange(3.0))
    local t = py.from_dlpack(cap)   -- a raw capsule is accepted
    assert.are.same({0, 1, 2}, t:totable())
    assert.matches("DLPack capsule already consumed", err_of(py.from_dlpack, cap))
    local twice = M.Twice(np.arange(2.0))
    py.from_dlpack(twice)
    assert.matches("already consumed", err_of(py.from_dlpack, twice))
    assert.matches("no __dlpack__ method", err_of(py.from_dlpack, py.eval("object()")))
    assert.matches("returned a int, not a capsule",
                   err_of(py.from_dlpack, py.eval("type('P', (), {'__dlpack__': lambda s: 42})()")))
    assert.matches("not a DLPack capsule %(name 'other'%)",
                   err_of(py.from_dlpack, M.Fake(kw{name = py.bytes("other")})))
    assert.matches("Python object expected", err_of(py.from_dlpack, 42))
    local e = err_of(py.from_dlpack, py.eval("type('P', (), {'__dlpack__': lambda s: 1 / 0})()"))
    assert.matches("division by zero", e)
    -- numpy refuses read-only arrays: its own error comes through
    local ro = np.zeros(2)
    ro.flags.writeable = false
    assert.matches("readonly", err_of(py.from_dlpack, ro))
  end)

  it("keeps a released Tensor from being used", function()
    local t = py.from_dlpack(np.zeros(2))
    t:release()
    assert.matches("released Tensor", err_of(function() return t[1] end))
    assert.matches("released Tensor", err_of(function() return t.device end))
    assert.matches("released Tensor", err_of(t.ptr, t))
    assert.matches("released Tensor", err_of(py.from_dlpack, t))
    assert.are.equal("pyasync.Tensor (released)", tostring(t))
  end)
end)

describe("__dlpack__ of py.array and Tensors", function()
  it("lets numpy and torch share a py.array", function()
    local base = stats()
    local a = py.array("f", {1, 2, 3})
    local tt = torch.from_dlpack(a)
    assert.are.equal(1, stats().exports)
    tt:mul_(2)
    assert.are.same({2.0, 4.0, 6.0}, a:totable())
    a[1] = -1
    assert.are.equal(-1.0, tt[0]:item())
    local n = np.from_dlpack(a)
    assert.are.equal(-1.0, py.builtins.float(py.item(n, 0)))
    assert.are.equal("float32", tostring(n.dtype))
    -- torch keeps the memory after Lua drops the array
    a = nil  -- luacheck: ignore 311
    n = nil  -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.are.equal(base.blocks + 1, stats().blocks)
    assert.are.equal(11.0, tt:sum():item() + 2)
    tt = nil  -- luacheck: ignore 311
    assert.are.equal(0, stats().exports)
    assert.are.equal(base.blocks, stats().blocks)
  end)

  it("reports the device and refuses what it cannot honour", function()
    local a = py.array("d", 2)
    assert.are.same({1, 0}, py.totable(py.eval("lambda a: a.__dlpack_device__()")(a)))
    assert.matches("copy=True", err_of(M.dlpack, a, kw{copy = true}))
    assert.matches("another device", err_of(M.dlpack, a, kw{dl_device = py.tuple(2, 0)}))
    local cap = M.dlpack(a, kw{stream = py.None, max_version = py.tuple(1, 0)})  -- luacheck: ignore 231
    assert.are.equal(1, stats().exports)
    cap = nil   -- never consumed: the capsule's destructor runs the deleter
    assert.are.equal(0, stats().exports)
    local b = py.array("?", {true, false})
    local t = py.from_dlpack(b)
    assert.are.equal("bool", t.dtype)
    assert.are.same({true, false}, t:totable())
  end)

  it("re-exports a consumed Tensor, the producer's deleter last", function()
    local x = np.arange(4.0)
    local r0 = refs(x)
    local t = py.from_dlpack(x)
    local tt = torch.from_dlpack(t)
    tt:add_(10)
    assert.are.same({10, 11, 12, 13}, py.totable(x:tolist()))
    t:release()
    assert.are.equal(r0 + 1, refs(x))   -- torch still shares it
    assert.are.equal(13.0, py.item(tt, 3):item())
    tt = nil  -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.are.equal(r0, refs(x))
    assert.are.equal(0, stats().imports)
  end)

  it("defers the producer's release when a consumer deletes without the GIL", function()
    local x = np.arange(3.0)
    local r0 = refs(x)
    local i0 = stats().imports
    local t = py.from_dlpack(x)
    local del = M.consume_like_c(M.dlpack(t))
    t:release()               -- the C consumer still holds the memory
    assert.are.equal(r0 + 1, refs(x))
    assert.are.equal(1, py._buffer_stats().exports)
    -- our deleter ran with the GIL released: numpy's deleter waits
    assert.are.equal(0, M.delete_without_gil(del, x))
    assert.are.equal(0, py._buffer_stats().exports)
    assert.are.equal(i0 + 1, py._buffer_stats().imports)
    assert.are.equal(r0, refs(x))   -- ran at this call's GIL acquisition
    assert.are.equal(i0, py._buffer_stats().imports)
    -- Lua-owned memory needs no GIL at all
    local base = stats().blocks
    local a = py.array("d", 2)
    del = M.consume_like_c(M.dlpack(a))
    a:release()
    assert.are.equal(base + 1, stats().blocks)
    M.delete_without_gil(del, 0)
    assert.are.equal(base, py._buffer_stats().blocks)
  end)

  it("counts every capsule and block back to zero", function()
    local base = stats()
    for i = 1, 50 do
      local a = py.array("i", {i, i + 1})
      local t = py.from_dlpack(a)
      local n = np.from_dlpack(t)
      assert.are.equal(i + 1, py.eval("int(n[1])", py.dict{n = n}))
    end
    local s = stats()
    assert.are.equal(base.blocks, s.blocks)
    assert.are.equal(0, s.exports)
    assert.are.equal(0, s.imports)
  end)
end)

describe("400 MB without copying", function()
  local function rss()
    local f = assert(io.open("/proc/self/statm"))
    local pages = tonumber(f:read("a"):match("^%d+%s+(%d+)"))
    f:close()
    return pages * py.eval("__import__('resource').getpagesize()")
  end

  it("views, fills and imports through DLPack with flat RSS", function()
    py.exec("_big = np.ones(50_000_000)")   -- 400 MB, every page touched
    local before = rss()
    local v = py.buffer(M._big)
    assert.are.equal(50000000, #v)
    assert.are.equal(1.0, v[1])
    assert.are.equal(1.0, v[#v])
    v:fill(2.0)
    assert.are.equal(2.0, py.eval("float(_big[-1])"))
    local t = py.from_dlpack(M._big)
    assert.are.equal(2.0, t[25000000])
    t[#t] = 3.0
    assert.are.equal(3.0, v[#v])
    local grown = rss() - before
    assert.is_true(grown < 40 * 2 ^ 20, ("RSS grew by %d bytes"):format(grown))
    v:release()
    t:release()
    py.exec("del _big")
  end)

  it("leaves nothing behind", function()
    local s = stats()
    assert.are.equal(0, s.exports)
    assert.are.equal(0, s.imports)
    assert.is_true(support.drained())
  end)
end)
