-- buffer_views.lua - py.buffer and py.array: Lua reads and writes the memory
-- of numpy arrays and bytearrays in place, and hands Lua-owned arrays to numpy,
-- with no copy in either direction.
local py = require "pyasync"
local np = py.import "numpy"

-- A View over a 2-D numpy array: 1-based indexes, strides in bytes.
local a = np.arange(6, py.kw{dtype = "float64"}):reshape(2, 3)
do
  local v <close> = py.buffer(a)
  print(v, v.format, v.itemsize, #v)
  print("shape", table.concat(v.shape, "x"), "strides", table.concat(v.strides, ","))
  v:set(1, 2, 10.5)                       -- a[0, 1] = 10.5
  print("a[1][2] =", v:get(1, 2))
end                                       -- released here
print(a)

-- Views follow any strides: every other element, backwards.
local r = py.buffer(py.eval("a[::2]", py.dict{a = np.arange(10, py.kw{dtype = "int32"})}))
print("every other:", table.concat(r:totable(), " "), "stride", r.strides[1])
local b = py.buffer(py.eval("a[::-1]", py.dict{a = np.arange(5, py.kw{dtype = "int16"})}))
local rev = {}
for i = 1, #b do rev[#rev + 1] = b[i] end
print("backwards:", table.concat(rev, " "), "stride", b.strides[1])

-- A bytearray cannot be resized while Lua holds a View on it.
local ns = py.dict{buf = py.builtins.bytearray(py.bytes("hello"))}
local v = py.buffer(ns.buf)
v[1] = string.byte("j")
print(v:tobytes(), v.readonly)
local ok, err = pcall(py.exec, "buf.extend(b'!')", ns)
print("resize while viewed:", ok, err.type)
v:release()
py.exec("buf.extend(b'!')", ns)
print("after release:", ns.buf)

-- Mistakes are errors, not crashes (the message without its position).
local function try(f, ...)
  local fine, e = pcall(f, ...)
  return fine, (tostring(e):gsub("^[^\n]-:%d+: ", ""))
end
local ro = py.buffer(py.bytes("abc"))
print(try(ro.set, ro, 1, 0))
print(try(function() return ro[4] end))
print(try(function() return v[1] end))

-- py.array: Lua-owned memory that numpy shares.
local arr = py.array("d", {1, 2, 3, 4})
local n = np.asarray(arr)
n[0] = 100                                -- numpy writes ...
print("arr[1] =", arr[1])                 -- ... Lua sees it
arr:fill(0.5)                             -- Lua writes ...
print("numpy sum:", n:sum())              -- ... numpy sees it
arr = nil  -- luacheck: ignore 311
collectgarbage()                          -- numpy keeps the memory alive
print("after Lua let go:", n)
