-- dlpack_exchange.lua - DLPack both ways: Lua takes numpy and torch memory
-- with py.from_dlpack, and hands py.array memory to torch and numpy.  No
-- copy anywhere: every write shows up on the other side.
local py = require "pyasync"
local np = py.import "numpy"
local torch = py.import "torch"

-- numpy -> Lua: a Tensor over the array's memory; strides in elements.
local x = np.arange(6, py.kw{dtype = "float32"}):reshape(2, 3)
do
  local t <close> = py.from_dlpack(x)
  print(t, t.device, t.dtype, t.ndim)
  print("shape", table.concat(t.shape, "x"), "strides", table.concat(t.strides, ","))
  print("t[2][3] =", t:get(2, 3))
  t:set(1, 1, 42)
end                            -- the producer's deleter runs here
print(x)

-- torch -> Lua, and torch sees what Lua writes.
local tt = torch.arange(4, py.kw{dtype = torch.int64})
local t = py.from_dlpack(tt)
for i = 1, #t do t[i] = t[i] * 10 end
print(t.dtype, tt)
t:release()

-- Lua -> torch and numpy: a py.array has __dlpack__ and __dlpack_device__.
local a = py.array("f", {1, 2, 3})
local ta = torch.from_dlpack(a)
ta:mul_(2)                     -- in place, on a's memory
print("after torch mul_:", a[1], a[2], a[3])
local na = np.from_dlpack(a)
a[3] = -1
print("numpy sees:", na)

-- A Tensor can be passed on again: torch shares numpy's memory through Lua.
local y = np.zeros(3)
local ty = py.from_dlpack(y)
local torch_y = torch.from_dlpack(ty)
ty:release()                   -- torch still holds the memory
torch_y:add_(7)
print("numpy after torch add_:", y)

-- A capsule is consumed once.
local cap = py.eval("lambda a: a.__dlpack__()")(np.ones(2))
local ok1 = pcall(py.from_dlpack, cap)
local ok2, err = pcall(py.from_dlpack, cap)
print("first:", ok1, "second:", ok2, err)
