-- repl_spec.lua - Tab completion in the host binary's REPL (API.md section
-- 10), typed into `pyasync -i` running in tmux: Lua globals, fields,
-- methods after ':', Python attributes, and completions on objects that
-- raise.  Each case gets its own tmux server (-L), killed after it even
-- when the case fails; every wait is bounded.  pyasync.complete itself is
-- checked directly too.  The REPL runs in a new process in both modes.
local py = require "pyasync"
local support = require "support"

local q = support.shquote
local BIN = support.build .. "/pyasync"
local WAIT = 10  -- seconds at most for the screen to show something

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

local seq = 0
local Repl = {}
Repl.__index = Repl

local function start()
  assert(select(2, sh("command -v tmux")) == 0, "tmux not found: the REPL spec needs it (apt-get install tmux)")
  seq = seq + 1
  local self = setmetatable({name = ("pyasync-repl-%d-%d-%d"):format(os.time(), math.random(1 << 30), seq)}, Repl)
  self.tmux = "env -u TMUX tmux -L " .. q(self.name) .. " "
  local out, code = sh(self.tmux .. "-f /dev/null new-session -d -s " .. q(self.name)
                       .. " -x 200 -y 50 " .. q("exec " .. q(BIN) .. " -i"))
  assert(code == 0, "tmux new-session failed: " .. out)
  self.socket = sh(self.tmux .. "display-message -p '#{socket_path}'"):match("[^\n]+")
  self:wait("\n>")  -- capture-pane drops the prompt's trailing space
  return self
end

function Repl:screen()
  return "\n" .. sh(self.tmux .. "capture-pane -p -t " .. q(self.name))
end

-- Polls the screen until it contains text (plain), for WAIT seconds at most.
function Repl:wait(text)
  local screen
  for _ = 1, WAIT * 10 do
    screen = self:screen()
    if screen:find(text, 1, true) then return screen end
    os.execute("sleep 0.1")
  end
  error(("screen never showed %q; it shows:\n%s"):format(text, screen), 2)
end

-- Types text literally; keys after it are tmux key names (Tab, Enter, C-u).
function Repl:type(text, ...)
  if text ~= "" then sh(self.tmux .. "send-keys -t " .. q(self.name) .. " -l " .. q(text)) end
  for _, key in ipairs{...} do sh(self.tmux .. "send-keys -t " .. q(self.name) .. " " .. key) end
end

-- Runs a line and waits for its last output line and the next prompt
-- (keys typed earlier would be echoed by the terminal, not edited by
-- readline).
function Repl:run(line, expect)
  self:type(line, "Enter")
  return self:wait(expect .. "\n>")
end

function Repl:stop()
  sh(self.tmux .. "kill-server")
  if self.socket then os.remove(self.socket) end  -- tmux leaves it behind
end

describe("REPL Tab completion", function()
  local repl

  before_each(function() repl = start() end)
  after_each(function()
    if repl then repl:stop() end
    repl = nil
  end)

  it("completes a Lua global", function()
    repl:type("stri", "Tab")
    repl:wait("\n> string")
    repl:type("", "Enter")
    repl:wait("table: ")  -- the line ran: `string` prints as a table
  end)

  it("completes a field of a table", function()
    repl:type("string.for", "Tab")
    repl:wait("\n> string.format")
    repl:type('("%03d", 7)', "Enter")
    repl:wait("\n007\n")
  end)

  it("lists the candidates when there are several", function()
    repl:type("string.g", "Tab", "Tab")
    local screen = repl:wait("string.gsub")
    assert.is_truthy(screen:find("string.gmatch", 1, true))
  end)

  it("completes methods after ':', on strings and through __index tables", function()
    repl:run('s = "hello"; obj = setmetatable({}, {__index = {hello = function() return "hi" end, n = 1}}); print("set")', "\nset")
    repl:type("s:up", "Tab")
    repl:wait("\n> s:upper")
    repl:type("()", "Enter")
    repl:wait("\nHELLO\n")
    repl:type("obj:hel", "Tab")
    repl:wait("\n> obj:hello")
    repl:type("()", "Enter")
    repl:wait("\nhi\n")
  end)

  it("completes the attributes of Python objects", function()
    repl:run('py = require "pyasync"; np = py.import "numpy"; print("ready")', "\nready")
    repl:type("np.ara", "Tab")
    repl:wait("\n> np.arange")
    repl:type("(3)", "Enter")
    repl:wait("\n[0 1 2]\n")
    repl:type("np.random.randi", "Tab")
    repl:wait("\n> np.random.randint")
  end)

  it("survives completions on objects that raise", function()
    repl:run([[py = require "pyasync"; py.exec("class Bad:\n]] ..
             [[  def __getattr__(self, n): raise RuntimeError('getattr ' + n)\n]] ..
             [[  def __dir__(self): raise RuntimeError('dir')\n"); bad = py.main.Bad(); print("ready")]],
             "\nready")
    repl:type("bad.x", "Tab", "Tab")
    repl:type("", "C-u")
    repl:type("bad.foo.b", "Tab", "Tab")
    repl:type("", "C-u")
    repl:type("nosuch.a.b", "Tab", "C-u")
    repl:run("print(40 + 2)", "\n42")
    local screen = repl:screen()
    assert.is_falsy(screen:find("RuntimeError: ", 1, true), screen)
    assert.is_falsy(screen:find("Traceback", 1, true), screen)
  end)
end)

describe("pyasync.complete", function()
  local C = require "pyasync.complete"

  it("completes globals, fields, methods and keywords", function()
    assert.are.same({"string"}, C.complete("stri"))
    assert.are.same({"string.format"}, C.complete("x = string.for"))
    assert.are.same({"string.gmatch", "string.gsub"}, C.complete("string.g"))
    assert.are.same({"while"}, C.complete("wh"))
    _G.pyasync_complete_t = setmetatable({own = 1, f = print}, {__index = {inherited = true, g = print}})
    assert.are.same({"pyasync_complete_t.f", "pyasync_complete_t.g", "pyasync_complete_t.inherited",
                     "pyasync_complete_t.own"}, C.complete("pyasync_complete_t."))
    assert.are.same({"pyasync_complete_t:f", "pyasync_complete_t:g"}, C.complete("pyasync_complete_t:"))
    _G.pyasync_complete_t = nil
  end)

  it("completes Python attributes and dict keys", function()
    _G.pyasync_complete_np = py.import "numpy"
    _G.pyasync_complete_d = py.eval("{'alpha': 1, 'beta': 2, 3: 4}")
    assert.are.same({"pyasync_complete_np.arange"}, C.complete("pyasync_complete_np.ara"))
    assert.are.same({"pyasync_complete_np.linalg.norm"}, C.complete("pyasync_complete_np.linalg.nor"))
    assert.are.same({"pyasync_complete_d.alpha"}, C.complete("pyasync_complete_d.al"))
    local private = C.complete("pyasync_complete_np._")
    assert.is_true(#private > 0)
    for _, c in ipairs(C.complete("pyasync_complete_np.")) do
      assert.is_falsy(c:find("np._", 1, true), c)
    end
    _G.pyasync_complete_np, _G.pyasync_complete_d = nil, nil
  end)

  it("gives nothing, without raising, where there is nothing to complete", function()
    py.exec("class PyasyncCompleteBad:\n  def __getattr__(self, n): raise RuntimeError(n)\n"
            .. "  def __dir__(self): raise RuntimeError('dir')\n")
    _G.pyasync_complete_bad = py.main.PyasyncCompleteBad()
    for _, line in ipairs{"pyasync_complete_bad.", "pyasync_complete_bad.x.y", "nosuch.x",
                          "print('stri", "-- stri", "1.5", "a:b:c", "string..f", ""} do
      assert.are.same({}, C.complete(line), line)
    end
    assert.are.same({}, C.complete(nil))
    _G.pyasync_complete_bad = nil
  end)
end)
