local py = require "pyasync"
local support = require "support"

describe("smoke", function()
  it("calls Python", function()
    assert.are.equal(3, py.eval("1 + 2"))
  end)
  it("awaits a coroutine", function()
    py.exec("import asyncio\nasync def _smoke(x):\n    await asyncio.sleep(0)\n    return x")
    assert.are.equal(5, py.await(py.main._smoke(5)))
    assert.is_true(support.drained())
  end)
end)
