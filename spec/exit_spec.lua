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

-- Stock lua5.4 stops a script on SIGINT with a hook that fires at its next
-- Lua instruction; a top-level py.await waiting in libuv runs none, so the
-- wait must wake up for it (the host binary cancels its main task instead).
describe("SIGINT under stock lua5.4", function()
  it("stops a script waiting in a top-level py.await: 'interrupted!', status 1", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write('local py = require "pyasync"\n',
            'io.write("ready\\n"); io.stdout:flush()\n',
            'py.await(py.import("asyncio").sleep(3600))\n')
    f:close()
    local out, err = os.tmpname(), os.tmpname()
    -- started in the background; the shell waits for "ready" (bounded), sends
    -- SIGINT to lua5.4 itself, waits for it to end (bounded: then SIGKILL,
    -- status 137) and reports its status
    local cmd = ("(lua5.4 %s >%s 2>%s & pid=$!; " ..
                 "for i in $(seq 1 400); do grep -q ready %s && break; sleep 0.05; done; " ..
                 "kill -INT $pid; " ..
                 "for i in $(seq 1 600); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done; " ..
                 "kill -KILL $pid 2>/dev/null; wait $pid; echo $?)"):format(
      support.shquote(script), out, err, out)
    local p = io.popen(cmd)
    local status = tonumber(p:read("a"))
    p:close()
    local e = io.open(err):read("a")
    os.remove(script); os.remove(out); os.remove(err)
    assert.are.equal(1, status, e)
    assert.matches("interrupted!", e)
  end)
end)
