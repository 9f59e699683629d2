-- host_spec.lua - the host binary build/pyasync (API.md section 8): lua's
-- options and arg table, the script as the main task, exit statuses and
-- tracebacks, SIGINT, the REPL, and what happens at exit.  Every case runs
-- the binary in a new process, so the spec means the same in both modes.
local py = require "pyasync"
local support = require "support"

local q = support.shquote
local BIN = support.build .. "/pyasync"

local function readall(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function tempfile(contents)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(contents or "")
  f:close()
  return path
end

-- Runs `pyasync <args>` (args already quoted for sh).  opts.stdin: what
-- it reads (default nothing), opts.env: "VAR=value ..." prefix.  Returns
-- stdout, stderr, exit status, and how it ended ("exit" or "signal").
local function host(args, opts)
  opts = opts or {}
  local inp = tempfile(opts.stdin)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = string.format("%s %s %s <%s >%s 2>%s", opts.env or "", q(BIN),
                            args or "", q(inp), q(out), q(err))
  local _, how, code = os.execute(cmd)
  local o, e = readall(out), readall(err)
  os.remove(inp); os.remove(out); os.remove(err)
  return o, e, code, how
end

-- Runs a script file made of src: `pyasync [pre] <script> [post]`.
local function script(src, post, pre, opts)
  local path = tempfile(src)
  local o, e, code, how = host((pre or "") .. " " .. q(path) .. " " .. (post or ""), opts)
  os.remove(path)
  return o, e, code, how, path
end

local ASYNC_F = [[py.exec("import asyncio\nasync def f(): await asyncio.sleep(0.01); return 7")]]

describe("host options", function()
  it("-e runs a statement, as a task", function()
    local o, e, code = host("-e " .. q("print(1 + 1, coroutine.isyieldable())"))
    assert.are.equal("2\ttrue\n", o)
    assert.are.equal("", e)
    assert.are.equal(0, code)
  end)

  it("-e chunks run in order and share globals", function()
    local o, _, code = host("-e 'x = 20' -e 'print(x + 1)'")
    assert.are.equal("21\n", o)
    assert.are.equal(0, code)
  end)

  it("-l mod and -l g=mod require into globals", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    local f = assert(io.open(dir .. "/hostmod.lua", "w"))
    f:write("return {answer = 42}")
    f:close()
    local o, e, code = host("-l hostmod -l g=hostmod -e " .. q("print(hostmod.answer, g == hostmod)"),
                            {env = "LUA_PATH=" .. q(dir .. "/?.lua")})
    os.remove(dir .. "/hostmod.lua")
    os.remove(dir)
    assert.are.equal("42\ttrue\n", o, e)
    assert.are.equal(0, code)
  end)

  it("preloads pyasync: require works without LUA_PATH or LUA_CPATH", function()
    local o, e, code = host("-l py=pyasync -e " .. q("print(py.eval('6 * 7'))"),
                            {env = "LUA_PATH=/nonexistent/?.lua LUA_CPATH=/nonexistent/?.so"})
    assert.are.equal("42\n", o, e)
    assert.are.equal(0, code)
  end)

  it("-v prints the Lua, pyasync and Python versions", function()
    local o, _, code = host("-v")
    assert.are.equal(0, code)
    assert.truthy(o:find(_VERSION, 1, true), o)
    assert.truthy(o:find("pyasync " .. py.version, 1, true), o)
    assert.truthy(o:find("Python " .. py.python_version, 1, true), o)
  end)

  it("- runs stdin with the arguments after it", function()
    local o, _, code = host("- a b", {stdin = "print('stdin', arg[0], ...)"})
    assert.are.equal("stdin\t-\ta\tb\n", o)
    assert.are.equal(0, code)
  end)

  it("runs stdin when there is no script and stdin is not a terminal", function()
    local o, _, code = host("", {stdin = "print('piped', coroutine.isyieldable())"})
    assert.are.equal("piped\ttrue\n", o)
    assert.are.equal(0, code)
  end)

  it("-- ends the options", function()
    local o, _, code = script("print(arg[-1], select('#', ...), ...)", "-e x", "--")
    assert.are.equal(0, code)
    assert.are.equal("--\t2\t-e\tx\n", o)
  end)

  it("sets arg as lua does", function()
    local o, e, code, _, path = script([[
      print(#arg, arg[0], arg[1], arg[2], arg[-1], arg[-2], select("#", ...), ...)]],
      "a 'b c'", "-W")
    assert.are.equal(0, code, e)
    assert.are.equal(table.concat({2, path, "a", "b c", "-W", BIN, 2, "a", "b c"}, "\t") .. "\n", o)
  end)

  it("arg[0] is the binary when there is no script", function()
    local o = host("-e " .. q("print(arg[0], arg[1], arg[2])"))
    assert.are.equal(BIN .. "\t-e\tprint(arg[0], arg[1], arg[2])\n", o)
  end)

  it("LUA_INIT runs first, and -E ignores it", function()
    local o = host("-e 'print(x)'", {env = "LUA_INIT='x = 5'"})
    assert.are.equal("5\n", o)
    o = host("-E -e 'print(x)'", {env = "LUA_INIT='x = 5'"})
    assert.are.equal("nil\n", o)
  end)

  it("rejects an unknown option with the usage, status 1", function()
    local o, e, code = host("-z")
    assert.are.equal(1, code)
    assert.are.equal("", o)
    assert.truthy(e:find("unrecognized option '-z'", 1, true), e)
    assert.truthy(e:find("usage:", 1, true), e)
  end)
end)

describe("host script", function()
  it("exits 0 after a top-level py.await of an asyncio coroutine", function()
    local o, e, code = script("local py = require 'pyasync'\n" .. ASYNC_F .. [[

      print(coroutine.isyieldable(), py.await(py.main.f()))]])
    assert.are.equal("true\t7\n", o, e)
    assert.are.equal(0, code)
  end)

  it("keeps spawned tasks running after the main chunk returns", function()
    local o, e, code = script([[
      local py = require "pyasync"
      py.spawn(function() py.sleep(0.01) print("late") end)
      print("main end")]])
    assert.are.equal("main end\nlate\n", o, e)
    assert.are.equal(0, code)
  end)

  it("exits 1 with the message and a Lua traceback on an error", function()
    local o, e, code = host("-e " .. q("local function boom() error('kaboom') end boom()"))
    assert.are.equal(1, code)
    assert.are.equal("", o)
    assert.truthy(e:find("(command line):1: kaboom", 1, true), e)
    assert.truthy(e:find("stack traceback:", 1, true), e)
    assert.truthy(e:find("in local 'boom'", 1, true), e)
  end)

  it("exits 1 with the Python and Lua tracebacks on a Python exception", function()
    local _, e, code = script([[
      local py = require "pyasync"
      py.exec("def bad():\n    raise ValueError('python says no')")
      py.main.bad()]])
    assert.are.equal(1, code)
    assert.truthy(e:find("ValueError: python says no", 1, true), e)
    assert.truthy(e:find("Traceback (most recent call last)", 1, true), e)
    assert.truthy(e:find("in bad", 1, true), e)
    assert.truthy(e:find("stack traceback:", 1, true), e)
  end)

  it("exits 1 on a syntax error or a missing script", function()
    local _, e, code = script("x = = 1")
    assert.are.equal(1, code)
    assert.truthy(e:find("unexpected symbol", 1, true), e)
    _, e, code = host(q("/nonexistent/script.lua"))
    assert.are.equal(1, code)
    assert.truthy(e:find("cannot open", 1, true), e)
  end)

  it("does not run the script after a failing -e", function()
    local o, _, code = script("print('script ran')", nil, "-e 'error(1)'")
    assert.are.equal(1, code)
    assert.are.equal("", o)
  end)

  it("reports a failed task nobody awaited, and still exits 0", function()
    local o, e, code = script([[
      local py = require "pyasync"
      py.spawn(function() error("nobody saw this") end)
      print("main ok")]])
    assert.are.equal("main ok\n", o)
    assert.are.equal(0, code)
    assert.truthy(e:find("task failed and nobody awaited it", 1, true), e)
    assert.truthy(e:find("nobody saw this", 1, true), e)
  end)

  it("cancels outstanding Python tasks at exit", function()
    local o, e, code = script([[
      local py = require "pyasync"
      py.exec("import asyncio\nasync def g():\n  try:\n    await asyncio.sleep(60)\n" ..
              "  finally:\n    print('python cleanup', flush=True)")
      py.start(py.main.g())
      py.await(py.eval("asyncio.sleep(0)"))
      print("main end")]])
    assert.are.equal(0, code, e)
    assert.are.equal("main end\npython cleanup\n", o)
  end)
end)

describe("host SIGINT", function()
  -- Starts the script with a file name, waits (bounded) until the script
  -- has written that file, sends SIGINT, and returns what the host did.
  local function interrupt(src)
    local path, ready = tempfile(src), os.tmpname()
    os.remove(ready)
    local out, err = os.tmpname(), os.tmpname()
    local cmd = string.format(
      "%s %s %s </dev/null >%s 2>%s & pid=$!; i=0; " ..
      "while [ ! -s %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; " ..
      "kill -INT $pid; wait $pid",
      q(BIN), q(path), q(ready), q(out), q(err), q(ready))
    local _, _, code = os.execute(cmd)
    local o, e = readall(out), readall(err)
    os.remove(path); os.remove(ready); os.remove(out); os.remove(err)
    return o, e, code
  end

  it("cancels the main task awaiting Python, runs its finally, exits 130", function()
    -- Ready once the main task is suspended in its await and Python is
    -- inside the try: the spawned task runs only after main yields.
    local o, e, code = interrupt([[
      local py = require "pyasync"
      py.exec([=[
import asyncio
async def f(entered):
    try:
        entered.set()
        await asyncio.sleep(30)
    finally:
        print('py finally', flush=True)
]=])
      local entered = py.eval("asyncio.Event()")
      py.spawn(function()
        py.await(entered:wait())
        print("ready")
        local f = assert(io.open(arg[1], "w")) f:write("ready") f:close()
      end)
      py.await(py.main.f(entered))
      print("not reached")]])
    assert.are.equal(130, code, e)
    assert.are.equal("ready\npy finally\n", o)
    assert.truthy(e:find("CancelledError", 1, true), e)  -- reported, not killed
  end)

  it("stops a pure-Lua busy loop, exits 130", function()
    local o, e, code = interrupt([[
      require "pyasync"
      print("ready")
      local f = assert(io.open(arg[1], "w")) f:write("ready") f:close()
      local stop = os.clock() + 30
      while os.clock() < stop do end
      print("not reached")]])
    assert.are.equal(130, code, e)
    assert.are.equal("ready\n", o)
    assert.truthy(e:find("interrupted!", 1, true), e)
  end)
end)

describe("host REPL", function()
  it("runs lines from stdin and prints expression values", function()
    local o, e, code = host("-i", {stdin = "x = 1+1\nprint(x)\nx * 10\nfor i = 1, 2 do\nprint('i' .. i)\nend\n"})
    assert.are.equal(0, code, e)
    assert.truthy(o:find("\n2\n", 1, true), o)
    assert.truthy(o:find("\n20\n", 1, true), o)
    assert.truthy(o:find("\ni1\n", 1, true) and o:find("\ni2\n", 1, true), o)
  end)

  it("awaits at top level", function()
    local o, e, code = host("-i", {stdin = "py = require 'pyasync'\n" .. ASYNC_F ..
                                   "\nprint('got', py.await(py.main.f()))\n"})
    assert.are.equal(0, code, e)
    assert.truthy(o:find("got\t7", 1, true), o)
  end)

  it("reports an error and goes on", function()
    local o, e, code = host("-i", {stdin = "error('repl boom')\nprint('after' .. 'wards')\n"})
    assert.are.equal(0, code)
    assert.truthy(e:find("repl boom", 1, true), e)
    assert.truthy(o:find("afterwards", 1, true), o)
  end)

  it("runs the script first with -i", function()
    local o, e, code = script("y = 6", nil, "-i", {stdin = "print(y * 7)\n"})
    assert.are.equal(0, code, e)
    assert.truthy(o:find("\n42\n", 1, true), o)
  end)
end)
