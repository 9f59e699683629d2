-- module_spec.lua - Python code and modules (API.md section 1): exec, eval,
-- import, builtins, main, versions, py.init{path=...} and VIRTUAL_ENV.
local py = require "pyasync"
local support = require "support"

local tempfile, shutil = py.import("tempfile"), py.import("shutil")
local sys = py.import("sys")

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("py.exec and py.eval", function()
  it("run in __main__ by default", function()
    assert.are.equal(0, select("#", py.exec("_mod_x = 40")))
    assert.are.equal(42, py.eval("_mod_x + 2"))
    assert.are.equal(40, py.main._mod_x)
  end)

  it("run in a module or a dict given as namespace", function()
    local ns = py.dict{a = 1}
    py.exec("b = a + 1\nc = len([a, b])", ns)
    assert.are.equal(2, ns.b)
    assert.are.equal(2, ns.c)
    assert.are.equal(3, py.eval("a + b", ns))
    py.exec("_mod_only_in_ns = 1", ns)
    assert.is_false(py.hasattr(py.main, "_mod_only_in_ns"))
    local m = py.import("types").ModuleType("_mod_scratch")
    py.exec("y = 7", m)
    assert.are.equal(7, m.y)
    assert.are.equal(8, py.eval("y + 1", m))
  end)

  it("give a dict namespace __builtins__, as exec() does", function()
    local ns = py.dict{}
    py.exec("import numpy\nr = bool(numpy.array([1, 2]).all())", ns)
    assert.is_true(ns.r)
    assert.is_true(py.eval("'__builtins__' in d", py.dict{d = ns}))
    ns = py.dict{x = py.import("numpy").array({1, 0})}
    assert.is_false(py.eval("bool(x.all())", ns))
  end)

  it("refuses a namespace that is neither module nor dict", function()
    local ok, e = pcall(py.exec, "x = 1", py.eval("[]"))
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("module or dict expected", 1, true))
    ok, e = pcall(py.eval, "1", 5)
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("Python object expected", 1, true))
    assert.is_false(py._core._gil_held())
  end)

  it("evaluate expressions only in py.eval", function()
    local ok, e = pcall(py.eval, "x = 1")
    assert.is_false(ok)
    assert.are.equal("SyntaxError", e.type)
  end)

  it("refuse source with a NUL byte", function()
    local ok, e = pcall(py.exec, "x = 1\0garbage")
    assert.is_false(ok)
    assert.is_truthy(tostring(e):find("NUL", 1, true))
  end)
end)

describe("py.import", function()
  it("returns a module proxy", function()
    local json = py.import("json")
    assert.are.equal("module", py.type(json))
    assert.are.equal("[1, 2]", json.dumps({1, 2}))
    assert.are.equal("json", json.__name__)
    assert.are.equal("posixpath", py.import("os.path").__name__)
  end)

  it("raises ModuleNotFoundError for a missing module", function()
    local ok, e = pcall(py.import, "no_such_module_for_pyasync")
    assert.is_false(ok)
    assert.is_true(py.iserror(e))
    assert.are.equal("ModuleNotFoundError", e.type)
    assert.is_true(py.iserror(e, "ImportError"))
  end)
end)

describe("py.builtins and py.main", function()
  it("are the builtins and __main__ modules", function()
    assert.are.equal("builtins", py.builtins.__name__)
    assert.are.equal(3, py.builtins.len({1, 2, 3}))
    assert.are.equal("__main__", py.main.__name__)
    assert.is_true(py.is(py.main, sys.modules["__main__"]))
    assert.is_true(py.is(py.builtins, sys.modules["builtins"]))
  end)
end)

describe("versions", function()
  it("py.version is this library's version", function()
    assert.are.equal("string", type(py.version))
    assert.is_truthy(py.version:match("^%d+%.%d+%.%d+"))
  end)

  it("py.python_version is the embedded Python's", function()
    local v = sys.version_info
    assert.are.equal(("%d.%d.%d"):format(v.major, v.minor, v.micro), py.python_version)
  end)
end)

describe("py.init", function()
  it("prepends path entries to sys.path", function()
    local dir = tempfile.mkdtemp()
    local dir2 = tempfile.mkdtemp()
    write(dir .. "/pyasync_mod_spec_a.py", "VALUE = 'from a'\n")
    write(dir2 .. "/pyasync_mod_spec_b.py", "VALUE = 'from b'\n")
    assert.are.equal(py, py.init{path = {dir, dir2}})
    assert.are.equal(dir, sys.path[0])
    assert.are.equal(dir2, sys.path[1])
    assert.are.equal("from a", py.import("pyasync_mod_spec_a").VALUE)
    assert.are.equal("from b", py.import("pyasync_mod_spec_b").VALUE)
    py.init{path = dir2}  -- a single string; an entry present moves to the front
    assert.are.equal(dir2, sys.path[0])
    assert.are.equal(1, py.eval("sys.path.count(d)", py.dict{sys = sys, d = dir2}))
    sys.path:remove(dir)
    sys.path:remove(dir2)
    shutil.rmtree(dir)
    shutil.rmtree(dir2)
  end)

  it("with no options does nothing", function()
    local n = #sys.path
    assert.are.equal(py, py.init())
    assert.are.equal(py, py.init{})
    assert.are.equal(n, #sys.path)
  end)
end)

describe("VIRTUAL_ENV", function()
  it("makes that venv's site-packages importable, in both modes", function()
    local venv = tempfile.mkdtemp()
    py.import("venv").create(venv, py.kw{with_pip = false, symlinks = true})
    local v = sys.version_info
    local site = ("%s/lib/python%d.%d/site-packages"):format(venv, v.major, v.minor)
    write(site .. "/pyasync_venv_probe.py", "WHERE = 'venv'\n")
    local script = [[
local py = require "pyasync"
local sys = py.import("sys")
local ok, m = pcall(py.import, "pyasync_venv_probe")
print(ok and m.WHERE or m.type, sys.prefix, sys.executable)
]]
    for _, how in ipairs({"host", "lua"}) do
      local out, err, code = support.run_script(script, how, nil,
        "VIRTUAL_ENV=" .. support.shquote(venv))
      assert.are.equal(0, code, err)
      assert.are.equal(("venv\t%s\t%s/bin/python\n"):format(venv, venv), out)
      -- and without it the module is not there
      out, err, code = support.run_script(script, how, nil, "env -u VIRTUAL_ENV")
      assert.are.equal(0, code, err)
      assert.are.equal("ModuleNotFoundError\t", out:sub(1, 20))
      assert.is_falsy(out:find(venv, 1, true))
    end
    shutil.rmtree(venv)
  end)
end)
