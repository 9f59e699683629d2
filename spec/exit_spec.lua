-- exit_spec.lua - os.exit(n) exits with status n whatever the script
-- imported (issue: with torch loaded, finalizing Python from an atexit
-- handler ran after libtorch's C++ static destructors and crashed), in the
-- host binary and under stock lua5.4, each run in a new process.
local support = require "support"

-- imports arg[1], touches it a little, then os.exit(arg[2] as integer)
local SCRIPT = [[
local py = require "pyasync"
local name, code = arg[1], math.tointeger(tonumber(arg[2]))
local m = py.import(name)
if name == "torch" then
  local a = py.array("f", 4)
  local t = m.from_dlpack(a)
  assert(#t == 4)
elseif name == "numpy" then
  assert(m.arange(3):sum():item() == 3)
end
-- some async work first, so the loop thread runs while the exit happens
py.exec("import asyncio\nasync def nap():\n    await asyncio.sleep(0)")
py.await(py.main.nap())
io.write("exiting\n")
io.stdout:flush()
os.exit(code)
]]

local function run(mode, name, code)
  return support.run_script(SCRIPT, mode, name .. " " .. code, "timeout 120")
end

for _, mode in ipairs({"host", "lua"}) do
  describe("os.exit(n) (" .. mode .. ")", function()
    for _, name in ipairs({"numpy", "torch", "aiohttp", "asyncpg", "distributed"}) do
      it("exits with n after importing " .. name, function()
        local out, err, code = run(mode, name, 7)
        assert.are.equal(7, code, err)
        assert.are.equal("exiting\n", out)
      end)
    end

    it("exits 0 with os.exit(true) and os.exit(0, true) after torch", function()
      local src = 'local py = require "pyasync"\npy.import "torch"\nos.exit(true)\n'
      local _, err, code = support.run_script(src, mode, nil, "timeout 120")
      assert.are.equal(0, code, err)
      src = 'local py = require "pyasync"\npy.import "torch"\nos.exit(0, true)\n'
      _, err, code = support.run_script(src, mode, nil, "timeout 120")
      assert.are.equal(0, code, err)
    end)

    it("exits 1 with os.exit(false) after torch", function()
      local src = 'local py = require "pyasync"\npy.import "torch"\nos.exit(false)\n'
      local _, err, code = support.run_script(src, mode, nil, "timeout 120")
      assert.are.equal(1, code, err)
    end)

    it("ends a script that imported torch with status 0", function()
      local src = 'local py = require "pyasync"\nlocal torch = py.import "torch"\n' ..
                  'local y = torch.from_dlpack(py.array("f", 4))\nassert(#y == 4)\n'
      local _, err, code = support.run_script(src, mode, nil, "timeout 120")
      assert.are.equal(0, code, err)
    end)
  end)
end
