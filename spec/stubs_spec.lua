-- stubs_spec.lua - build/pyasync-stubs (API.md section 10): LuaLS
-- definitions for Python modules.  Every case runs the tool in a new
-- process and reads what it wrote, so the spec means the same in both
-- modes; the files are loaded with loadfile and their annotations checked.
local py = require "pyasync"
local support = require "support"

local q = support.shquote
local TOOL = support.build .. "/pyasync-stubs"
local tempfile, shutil = py.import "tempfile", py.import "shutil"

local function readall(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Runs `pyasync-stubs <args>` (quoted for sh); returns its output
-- (stdout and stderr together), exit status and the seconds it took.
local function stubs(args, env)
  local out = os.tmpname()
  local t0 = os.time()
  local _, _, code = os.execute(("%s %s %s >%s 2>&1"):format(env or "", q(TOOL), args, q(out)))
  local o = readall(out)
  os.remove(out)
  return o, code, os.time() - t0
end

-- The `do ... end` block that declares class `name` in a generated file.
local function block(text, name)
  local at = text:find("\n---@class " .. name:gsub("%p", "%%%0") .. ":", 1)
  assert(at, "no ---@class " .. name)
  local start = 1
  repeat  -- the last "\ndo\n" before the class line
    local s = text:find("\ndo\n", start, true)
    if s and s < at then start = s + 1 end
  until not s or s >= at
  local stop = assert(text:find("\nend\n", at, true), "unterminated block of " .. name)
  return text:sub(start, stop + 4)
end

-- The annotation lines right above the definition of function `name` in a
-- block (`function M.name(`, `function M:name(` or `M["name"] = function(`).
local function annotations(blk, name)
  local lines, found = {}, nil
  for line in blk:gmatch("[^\n]*") do
    if line:match("^function M[.:]" .. name .. "%(") or line:match('^M%["' .. name .. '"%] = function%(') then
      found = line
      break
    end
    if line:match("^%-%-%-") then lines[#lines + 1] = line else lines = {} end
  end
  assert(found, "no function " .. name)
  return table.concat(lines, "\n"), found
end

-- Checks a generated file: Lua that loads, a ---@meta header, and only
-- the annotation tags the generator writes (a docstring line starting
-- with @ must not become one).
local TAGS = {meta = true, class = true, field = true, param = true, ["return"] = true,
              overload = true}
local function check_file(path)
  local text = assert(readall(path), "missing " .. path)
  assert.is_truthy(loadfile(path), path)
  assert.are.equal("---@meta\n", text:sub(1, 9))
  for tag in text:gmatch("\n%-%-%-@(%a+)") do
    assert(TAGS[tag], path .. ": unexpected ---@" .. tag)
  end
  return text
end

describe("pyasync-stubs", function()
  local dir, out, code, secs

  setup(function()
    dir = tempfile.mkdtemp()
    out, code, secs = stubs("asyncio aiohttp httpx numpy -o " .. q(dir))
  end)

  teardown(function()
    if dir then shutil.rmtree(dir) end
  end)

  it("--help prints the usage and exits 0", function()
    local o, c = stubs("--help")
    assert.are.equal(0, c)
    assert.is_truthy(o:find("usage: pyasync-stubs", 1, true))
    assert.is_truthy(o:find("-o DIR", 1, true))
    assert.is_truthy(o:find("--depth", 1, true))
  end)

  it("writes one loadable file per module, quickly", function()
    assert.are.equal(0, code, out)
    for _, m in ipairs{"asyncio", "aiohttp", "httpx", "numpy"} do
      check_file(dir .. "/" .. m .. ".lua")
      assert.is_truthy(out:find("wrote " .. dir .. "/" .. m .. ".lua", 1, true))
    end
    assert.is_true(secs < 60, "took " .. secs .. " s")
  end)

  it("types asyncio: modules, classes, awaitables, keywords", function()
    local text = check_file(dir .. "/asyncio.lua")
    local mod = block(text, "asyncio")
    assert.is_truthy(mod:find("---@class asyncio: pyasync.Object", 1, true))
    assert.is_truthy(mod:find("\n---@field Queue asyncio.Queue\n", 1, true))
    local ann = annotations(mod, "sleep")
    assert.is_truthy(ann:find("---@param delay", 1, true))
    assert.is_truthy(ann:find("---@param result? any", 1, true))
    assert.is_truthy(ann:find("\n---@return pyasync.AwaitableOf<any>$"))
    -- keyword-only parameters: one trailing py.kw{} table
    ann = annotations(mod, "create_task")
    assert.is_truthy(ann:find("---@param kw? pyasync.Kwargs Keyword arguments, passed as `py.kw{...}`: `name`", 1, true))
    local queue = block(text, "asyncio.Queue")
    assert.is_truthy(queue:find("---@overload fun(maxsize?: number): asyncio.Queue", 1, true))
    local put, def = annotations(queue, "put")
    assert.are.equal("function M:put(item) end", def)
    assert.is_truthy(put:find("---@param item any", 1, true))
    assert.is_truthy(put:find("---@return pyasync.AwaitableOf<", 1, true))
    assert.is_truthy(annotations(queue, "get"):find("---@return pyasync.AwaitableOf<", 1, true))
    local nowait = annotations(queue, "put_nowait")
    assert.is_falsy(nowait:find("AwaitableOf", 1, true))
    -- subclasses inherit the emitted base
    assert.is_truthy(text:find("---@class asyncio.LifoQueue: asyncio.Queue", 1, true))
  end)

  it("types httpx from its hints: async generators, classes, unions", function()
    local text = check_file(dir .. "/httpx.lua")
    local resp = block(text, "httpx.Response")
    assert.is_truthy(annotations(resp, "aiter_bytes"):find("---@return pyasync.AsyncIterableOf<string>", 1, true))
    assert.is_truthy(annotations(resp, "aread"):find("---@return pyasync.AwaitableOf<string>", 1, true))
    local client = block(text, "httpx.AsyncClient")
    local get = annotations(client, "get")
    assert.is_truthy(get:find("---@param url httpx.URL|string", 1, true))
    assert.is_truthy(get:find("---@return pyasync.AwaitableOf<httpx.Response>", 1, true))
    assert.is_truthy(get:find("`follow_redirects` (boolean", 1, true))
  end)

  it("describes aiohttp with its submodules", function()
    local text = check_file(dir .. "/aiohttp.lua")
    assert.is_truthy(block(text, "aiohttp"):find("\n---@field ClientSession aiohttp.ClientSession\n", 1, true))
    local session = block(text, "aiohttp.ClientSession")
    assert.is_truthy(annotations(session, "close"):find("---@return pyasync.AwaitableOf<nil>", 1, true))
    assert.is_truthy(text:find("\n---@class aiohttp.web_exceptions: pyasync.Object", 1, true)
                     or text:find("\n---@class aiohttp.client: pyasync.Object", 1, true))
  end)

  it("types numpy from docstrings where it has no signatures", function()
    local text = check_file(dir .. "/numpy.lua")
    local np = block(text, "numpy")
    local ann, def = annotations(np, "arange")
    assert.are.equal("function M.arange(start, stop, step, dtype, kw) end", def)
    assert.is_truthy(ann:find("---@return numpy.ndarray", 1, true))
    assert.is_truthy(ann:find("`like`", 1, true))
    assert.is_truthy(np:find("\n---@field pi number", 1, true))
    assert.is_truthy(np:find("\n---@field linalg numpy.linalg", 1, true))
    local nd = block(text, "numpy.ndarray")
    assert.are.equal("function M:reshape(shape, order) end", select(2, annotations(nd, "reshape")))
    -- a Lua keyword as a method name
    assert.is_truthy(select(2, annotations(nd, "repeat")))
    assert.is_truthy(text:find("\n---@class numpy.linalg: pyasync.Object", 1, true))
  end)

  it("survives an odd module, found through PYTHONPATH", function()
    local root = tempfile.mkdtemp()
    py.import("os").makedirs(root .. "/oddpkg")
    write(root .. "/oddpkg/__init__.py", [[
"""An odd package: everything here misbehaves when looked at."""
import math, sys, types
from typing import AsyncIterator

__all__ = ["Exploding", "Weird", "instance", "hypot", "nosig", "end", "local", "agen",
           "coro", "lazy_fail", "lazy_exit", "ghost", "exploding", "sub", "pi_like", 42]

class Exploding:
    """Instances refuse every attribute."""
    @property
    def boom(self) -> int:
        raise RuntimeError("property raised")
    def __getattr__(self, name):
        raise RuntimeError("no " + name)
    def __getattribute__(self, name):
        raise RuntimeError("getattribute " + name)

class Meta(type):
    def __getattr__(cls, name):
        raise RuntimeError("meta " + name)
    @property
    def __signature__(cls):
        raise RuntimeError("signature raised")
    @property
    def __doc__(cls):
        raise RuntimeError("doc raised")

class Weird(metaclass=Meta):
    def method(self, x: "NotDefinedAnywhere") -> "Missing[int]":
        """@param x looks like an annotation"""

instance = Exploding()
hypot = math.hypot                 # C builtin, signature from the docstring
nosig = sys.getrecursionlimit      # C builtin
def end(x): return x               # a Lua keyword
local = 3
pi_like = 3.5

async def agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i

async def coro(x: int, *, flag: bool = False) -> str:
    return str(x)

class _Module(types.ModuleType):
    @property
    def exploding(self):
        raise RuntimeError("module property raised")
sys.modules[__name__].__class__ = _Module

def __getattr__(name):
    if name == "lazy_fail":
        raise RuntimeError("lazy attribute raised")
    if name == "lazy_exit":
        raise SystemExit(3)
    if name == "sub":
        import importlib
        return importlib.import_module(__name__ + ".sub")
    raise AttributeError(name)
]])
    write(root .. "/oddpkg/sub.py", [[
"""A submodule loaded lazily, without __all__."""
from math import sqrt
class Thing:
    def go(self, n: int = 1) -> "Thing": ...
]])
    local o, c = stubs("oddpkg -o " .. q(root .. "/out"), "PYTHONPATH=" .. q(root))
    assert.are.equal(0, c, o)
    local text = check_file(root .. "/out/oddpkg.lua")
    local mod = block(text, "oddpkg")
    assert.is_truthy(mod:find("\n---@field instance oddpkg.Exploding\n", 1, true))
    assert.is_truthy(mod:find("\n---@field pi_like number", 1, true))
    assert.is_truthy(mod:find("\n---@field sub oddpkg.sub", 1, true))
    assert.is_falsy(mod:find("lazy_", 1, true))
    assert.is_falsy(mod:find("exploding", 1, true))
    assert.is_truthy(select(2, annotations(mod, "hypot")))
    assert.is_truthy(select(2, annotations(mod, "nosig")))
    assert.are.equal('M["end"] = function(x) end', select(2, annotations(mod, "end")))
    assert.is_truthy(annotations(mod, "agen"):find("---@return pyasync.AsyncIterableOf<integer>", 1, true))
    local ann = annotations(mod, "coro")
    assert.is_truthy(ann:find("---@param x integer", 1, true))
    assert.is_truthy(ann:find("`py.kw{...}`: `flag` (boolean)", 1, true))
    assert.is_truthy(ann:find("---@return pyasync.AwaitableOf<string>", 1, true))
    assert.is_truthy(block(text, "oddpkg.Exploding"):find("---@field boom integer", 1, true))
    assert.is_truthy(annotations(block(text, "oddpkg.Weird"), "method"):find("\\@param x looks", 1, true))
    local thing = block(text, "oddpkg.sub.Thing")
    assert.is_truthy(annotations(thing, "go"):find("---@return oddpkg.sub.Thing", 1, true))
    shutil.rmtree(root)
  end)

  it("reads VIRTUAL_ENV as a pyasync script does", function()
    local venv = tempfile.mkdtemp()
    py.import("venv").create(venv, py.kw{with_pip = false, symlinks = true})
    local v = py.import("sys").version_info
    write(("%s/lib/python%d.%d/site-packages/venvmod.py"):format(venv, v.major, v.minor),
          "async def fetch(n: int) -> bytes: ...\n")
    local o, c = stubs("venvmod -o " .. q(venv .. "/out"), "VIRTUAL_ENV=" .. q(venv))
    assert.are.equal(0, c, o)
    local text = check_file(venv .. "/out/venvmod.lua")
    assert.is_truthy(annotations(block(text, "venvmod"), "fetch"):find("---@return pyasync.AwaitableOf<string>", 1, true))
    o, c = stubs("venvmod -o " .. q(venv .. "/out2"), "env -u VIRTUAL_ENV")
    assert.are.equal(1, c)
    assert.is_truthy(o:find("cannot import venvmod", 1, true))
    shutil.rmtree(venv)
  end)

  it("reports a module it cannot import and still writes the others", function()
    local d = tempfile.mkdtemp()
    local o, c = stubs("no_such_module_xyz json -o " .. q(d))
    assert.are.equal(1, c)
    assert.is_truthy(o:find("cannot import no_such_module_xyz: ModuleNotFoundError", 1, true))
    check_file(d .. "/json.lua")
    assert.is_nil(readall(d .. "/no_such_module_xyz.lua"))
    o, c = stubs("")
    assert.are.equal(2, c)
    assert.is_truthy(o:find("required: MODULE", 1, true))
    shutil.rmtree(d)
  end)
end)
