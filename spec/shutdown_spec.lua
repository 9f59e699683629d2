-- shutdown_spec.lua - the end of a script (API.md section 8): outstanding
-- Python tasks are cancelled (their finally runs), nothing hangs, and the
-- exit status is kept; in the host binary and under stock lua5.4.
local support = require "support"

-- Starts a long Python task whose finally writes arg[1], then ends as
-- arg[2] says.
local SCRIPT = [[
local py = require "pyasync"
local path, how = arg[1], arg[2]
py.exec([=[
import asyncio

async def long(path):
    try:
        await asyncio.sleep(100)
    finally:
        with open(path, "w") as f:
            f.write("finally ran")

async def nop():
    await asyncio.sleep(0)
]=])
py.start(py.main.long(path))
py.await(py.main.nop())  -- submitted after long: long has started
io.write("end of script\n")
io.stdout:flush()
if how == "error" then error("boom at the end", 0)
elseif how == "exit" then os.exit(3)
elseif how == "exit_close" then os.exit(3, true)
end
]]

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs SCRIPT ending as how; returns stdout, stderr, exit code and what the
-- Python finally wrote.  "timeout" turns a hang into exit code 124.
local function run(mode, how)
  local path = os.tmpname()
  os.remove(path)
  local out, err, code = support.run_script(SCRIPT, mode,
    support.shquote(path) .. " " .. how, "timeout 60")
  local written = readfile(path)
  os.remove(path)
  return out, err, code, written
end

for _, mode in ipairs({"host", "lua"}) do
  describe("at the end of a script (" .. mode .. ")", function()
    it("cancels outstanding Python tasks and exits 0", function()
      local out, err, code, written = run(mode, "normal")
      assert.are.equal(0, code, err)
      assert.are.equal("end of script\n", out)
      assert.are.equal("finally ran", written)
    end)

    it("after an uncaught error: cancels them and exits 1", function()
      local out, err, code, written = run(mode, "error")
      assert.are.equal(1, code, err)
      assert.are.equal("end of script\n", out)
      assert.truthy(err:find("boom at the end", 1, true), err)
      assert.are.equal("finally ran", written)
    end)

    it("on os.exit(3, true): cancels them and keeps the status", function()
      local out, err, code, written = run(mode, "exit_close")
      assert.are.equal(3, code, err)
      assert.are.equal("end of script\n", out)
      assert.are.equal("finally ran", written)
    end)

    it("on os.exit(3), which does not close the state: the same", function()
      local out, err, code, written = run(mode, "exit")
      assert.are.equal(3, code, err)
      assert.are.equal("end of script\n", out)
      assert.are.equal("finally ran", written)
    end)
  end)
end
