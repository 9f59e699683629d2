-- eco_misc_spec.lua - aiosqlite and asyncio subprocesses used from Lua
-- (docs/ecosystem.md): they worked before loop affinity, and keep working.
-- uvloop: yes
local py = require "pyasync"
local support = require "support"

local asyncio = py.import "asyncio"
local aiosqlite = py.import "aiosqlite"
local subprocess = py.import "asyncio.subprocess"

local T = {timeout = 10}

describe("aiosqlite from Lua", function()
  it("creates, inserts, commits, and iterates a cursor as a for loop", function()
    py.with(aiosqlite.connect(":memory:"), function(db)
      py.await(db:execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"), T)
      py.await(db:executemany("INSERT INTO t (name) VALUES (?)", {{"a"}, {"b"}, {"c"}}), T)
      py.await(db:commit(), T)
      local rows = {}
      py.with(db:execute("SELECT id, name FROM t ORDER BY id"), function(cur)
        for row in py.aiter(cur) do rows[#rows + 1] = row[0] .. "=" .. row[1] end
      end)
      assert.are.same({"1=a", "2=b", "3=c"}, rows)
      local n = py.await(db:execute_fetchall("SELECT count(*) FROM t"), T)
      assert.are.equal(3, n[0][0])
      -- left early
      local first
      py.with(db:execute("SELECT name FROM t ORDER BY id"), function(cur)
        for row in py.aiter(cur) do first = row[0] break end  -- luacheck: ignore 512
      end)
      assert.are.equal("a", first)
    end)
  end)

  it("awaits connect directly, and a file database in a temporary directory", function()
    local tempfile = py.import "tempfile"
    py.with(tempfile.TemporaryDirectory(), function(dir)
      local path = dir .. "/eco.db"
      local db = py.await(aiosqlite.connect(path), T)
      py.await(db:execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"), T)
      py.await(db:execute("INSERT INTO kv VALUES (?, ?)", {"lua", "yes"}), T)
      py.await(db:commit(), T)
      py.await(db:close(), T)
      -- another connection sees it
      py.with(aiosqlite.connect(path), function(db2)
        local cur = py.await(db2:execute("SELECT v FROM kv WHERE k = ?", {"lua"}), T)
        assert.are.equal("yes", py.await(cur:fetchone(), T)[0])
      end)
    end)
  end)

  it("concurrent queries on several connections, in tasks", function()
    local r = py.run(function()
      local ts = {}
      for i = 1, 5 do
        ts[i] = py.spawn(function()
          return py.with(aiosqlite.connect(":memory:"), function(db)
            local cur = py.await(db:execute("SELECT ? * 2", {i}), T)
            return py.await(cur:fetchone(), T)[0]
          end)
        end)
      end
      return py.gather(ts, T)
    end)
    assert.are.same({2, 4, 6, 8, 10, n = 5}, r)
  end)

  it("an SQL error is a PyError, and a rollback by a Lua error", function()
    py.with(aiosqlite.connect(":memory:"), function(db)
      local ok, e = pcall(py.await, db:execute("SELECT * FROM nope"), T)
      assert.is_false(ok)
      assert.are.equal("OperationalError", e.type)
      py.await(db:execute("CREATE TABLE t (x INTEGER)"), T)
      py.await(db:commit(), T)
      ok = pcall(function()
        py.await(db:execute("INSERT INTO t VALUES (1)"), T)
        error("abandon")
      end)
      assert.is_false(ok)
      py.await(db:rollback(), T)
      local n = py.await(db:execute_fetchall("SELECT count(*) FROM t"), T)
      assert.are.equal(0, n[0][0])
    end)
  end)
end)

describe("asyncio subprocesses from Lua", function()
  it("create_subprocess_exec with communicate()", function()
    local proc = py.await(asyncio.create_subprocess_exec("echo", "hello", py.kw{stdout = subprocess.PIPE}), T)
    local out = py.await(proc:communicate(), T)
    assert.are.equal("hello\n", out[0])
    assert.are.equal(0, proc.returncode)
  end)

  it("writes stdin (bytes) and reads stdout lines as a for loop", function()
    local proc = py.await(asyncio.create_subprocess_exec("cat", py.kw{stdin = subprocess.PIPE,
                                                                      stdout = subprocess.PIPE}), T)
    proc.stdin:write(py.bytes("line1\nline2\n"))
    py.await(proc.stdin:drain(), T)
    proc.stdin:close()
    local lines = {}
    for line in py.aiter(proc.stdout) do lines[#lines + 1] = line end
    assert.are.same({"line1\n", "line2\n"}, lines)
    assert.are.equal(0, py.await(proc:wait(), T))
  end)

  it("a timeout on wait(), then kill()", function()
    local proc = py.await(asyncio.create_subprocess_exec("sleep", "30"), T)
    local ok, e = pcall(py.await, proc:wait(), {timeout = 0.1})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.is_nil(proc.returncode)
    proc:kill()
    assert.are.equal(-9, py.await(proc:wait(), T))
  end)

  it("create_subprocess_shell's exit status, several at once", function()
    local procs = {}
    for i = 1, 4 do
      procs[i] = py.await(asyncio.create_subprocess_shell("exit " .. i), T)
    end
    local waits = {}
    for i = 1, 4 do waits[i] = procs[i]:wait() end
    assert.are.same({1, 2, 3, 4, n = 4}, py.gather(waits, T))
  end)

  it("in a task, with stderr", function()
    local r = py.run(function()
      local proc = py.await(asyncio.create_subprocess_exec("sh", "-c", "echo out; echo err >&2",
        py.kw{stdout = subprocess.PIPE, stderr = subprocess.PIPE}), T)
      local res = py.await(proc:communicate(), T)
      return {res[0], res[1], proc.returncode}
    end)
    assert.are.same({"out\n", "err\n", 0}, r)
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
