-- error_spec.lua - PyError values (API.md section 4): fields, tostring,
-- py.iserror by name, base-class name and class, and PyErrors going back
-- into Python as their exceptions.
local py = require "pyasync"

py.exec([[
class _ErrMine(ValueError):
    pass

def _err_raise(msg):
    raise ValueError(msg)

def _err_mine():
    raise _ErrMine("mine")

class _ErrNoStr(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")
]])

local function catch(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok)
  return e
end

describe("PyError", function()
  it("has type, message, traceback and exception", function()
    local e = catch(py.main._err_raise, "bad value")
    assert.are.equal("ValueError", e.type)
    assert.are.equal("bad value", e.message)
    assert.is_truthy(e.traceback:find("Traceback (most recent call last)", 1, true))
    assert.is_truthy(e.traceback:find("_err_raise", 1, true))
    assert.is_truthy(e.traceback:find("ValueError: bad value", 1, true))
    assert.are.equal("ValueError", py.type(e.exception))
    assert.is_true(py.isinstance(e.exception, py.builtins.ValueError))
    assert.are.equal("bad value", e.exception.args[0])
  end)

  it("tostring is 'Type: message' followed by the traceback", function()
    local e = catch(py.main._err_raise, "msg")
    local s = tostring(e)
    assert.are.equal("ValueError: msg\n", s:sub(1, #"ValueError: msg\n"))
    assert.are.equal("ValueError: msg\n" .. e.traceback, s)
  end)

  it("comes from py.exec, py.eval and py.import alike", function()
    assert.are.equal("ZeroDivisionError", catch(py.eval, "1/0").type)
    assert.are.equal("NameError", catch(py.exec, "undefined_name_xyz").type)
    assert.are.equal("SyntaxError", catch(py.exec, "def (").type)
    local e = catch(py.import, "no_such_module_xyz")
    assert.are.equal("ModuleNotFoundError", e.type)
    assert.is_truthy(e.message:find("no_such_module_xyz", 1, true))
  end)

  it("carries the Python type name of a user exception", function()
    local e = catch(py.main._err_mine)
    assert.are.equal("_ErrMine", e.type)
    assert.are.equal("mine", e.message)
  end)

  it("survives an exception whose __str__ raises", function()
    local e = catch(py.exec, "raise _ErrNoStr()")
    assert.is_true(py.iserror(e, "_ErrNoStr"))
    assert.are.equal("string", type(e.message))
    assert.are.equal("string", type(tostring(e)))
    assert.are.equal(2, py.eval("1 + 1"))
  end)
end)

describe("py.iserror", function()
  local e = catch(py.main._err_mine)

  it("tells a PyError from other values", function()
    assert.is_true(py.iserror(e))
    assert.is_false(py.iserror("x"))
    assert.is_false(py.iserror({type = "ValueError"}))
    assert.is_false(py.iserror(nil))
    assert.is_false(py.iserror(42))
  end)

  it("matches a class name, also of a base class", function()
    assert.is_true(py.iserror(e, "_ErrMine"))
    assert.is_true(py.iserror(e, "ValueError"))
    assert.is_true(py.iserror(e, "Exception"))
    assert.is_true(py.iserror(e, "BaseException"))
    assert.is_false(py.iserror(e, "KeyError"))
    assert.is_false(py.iserror("ValueError: x", "ValueError"))
  end)

  it("matches a class, also a base class", function()
    assert.is_true(py.iserror(e, py.main._ErrMine))
    assert.is_true(py.iserror(e, py.builtins.ValueError))
    assert.is_true(py.iserror(e, py.builtins.Exception))
    assert.is_false(py.iserror(e, py.builtins.KeyError))
    assert.is_true(py.iserror(e, py.tuple(py.builtins.KeyError, py.builtins.ValueError)))
  end)

  it("refuses a second argument that is neither name nor class", function()
    local err = catch(py.iserror, e, 42)
    assert.is_truthy(tostring(err):find("string or Python class", 1, true))
    local r = py.eval("object()")
    py.release(r)
    err = catch(py.iserror, e, r)
    assert.is_truthy(tostring(err):find("released Python object", 1, true))
    assert.is_false(py._core._gil_held())
  end)
end)

describe("a PyError going back into Python", function()
  it("is its exception", function()
    local e = catch(py.main._err_raise, "again")
    py.main._err_got = e
    assert.is_true(py.eval("isinstance(_err_got, ValueError) and str(_err_got) == 'again'"))
    assert.is_true(py.is(py.main._err_got, e.exception))
  end)

  it("re-raised from a Lua function called by Python is the same exception", function()
    py.main._err_cb = function() py.main._err_raise("from lua") end
    py.exec([[
try:
    _err_cb()
except ValueError as e:
    _err_caught = e
]])
    assert.are.equal("from lua", tostring(py.main._err_caught))
    local e = catch(py.exec, "_err_cb()")
    assert.are.equal("ValueError", e.type)
    assert.are.equal("from lua", e.message)
  end)
end)
