-- eco_pg_spec.lua - asyncpg used from Lua (docs/ecosystem.md) against the
-- shared PostgreSQL fixture: a pool made in Lua, concurrent queries,
-- transactions committed and rolled back by a Lua error, pool:acquire() as
-- a context manager, cursors as for loops, Record fields, a cancelled
-- query that really stops on the server, LISTEN/NOTIFY into Lua.
-- fixtures: postgres
-- uvloop: yes
local py = require "pyasync"
local support = require "support"
local servers = require "servers"

local asyncio = py.import "asyncio"
local asyncpg = py.import "asyncpg"

local T = {timeout = 10}
local pg = servers.postgres()
-- a table of our own in the shared database
local tbl = ("eco_pg_%d_%d"):format(math.floor(os.time() % 100000), math.random(1, 1000000))

describe("asyncpg from Lua", function()
  local pool

  setup(function()
    pool = py.await(asyncpg.create_pool(pg.dsn, py.kw{min_size = 1, max_size = 4}), T)
    py.await(pool:execute(("CREATE TABLE %s (id int PRIMARY KEY, name text)"):format(tbl)), T)
  end)

  teardown(function()
    if pool then
      py.await(pool:execute(("DROP TABLE IF EXISTS %s"):format(tbl)), T)
      py.await(pool:close(), T)
    end
  end)

  it("create_pool awaited from Lua gives a pool on py.loop", function()
    assert.are.equal("Pool", py.type(pool))
    assert.is_true(py.is(pool._loop, py.loop))
    assert.are.equal(2, py.await(pool:fetchval("SELECT 1 + 1"), T))
  end)

  it("runs queries concurrently with py.gather", function()
    local qs = {}
    for i = 1, 20 do qs[i] = pool:fetchval("SELECT $1::int * 2", i) end
    local r = py.gather(qs, T)
    assert.are.equal(20, r.n)
    for i = 1, 20 do assert.are.equal(i * 2, r[i]) end
    -- more at once than the pool has connections: they queue for one
    local sleeps = {}
    for i = 1, 8 do sleeps[i] = pool:fetchval("SELECT $1::int FROM pg_sleep(0.01)", i) end
    r = py.gather(sleeps, T)
    for i = 1, 8 do assert.are.equal(i, r[i]) end
  end)

  it("runs in tasks too", function()
    local r = py.run(function()
      local ts = {}
      for i = 1, 4 do
        ts[i] = py.spawn(function() return py.await(pool:fetchval("SELECT $1::text", "t" .. i), T) end)
      end
      return py.gather(ts, T)
    end)
    assert.are.same({"t1", "t2", "t3", "t4", n = 4}, r)
  end)

  it("commits a transaction, and rolls one back on a Lua error", function()
    py.with(pool:acquire(), function(conn)
      py.with(conn:transaction(), function()
        py.await(conn:execute(("INSERT INTO %s VALUES (1, 'one'), (2, 'two')"):format(tbl)), T)
      end)
      local err = {reason = "roll back"}
      local ok, e = pcall(py.with, conn:transaction(), function()
        py.await(conn:execute(("INSERT INTO %s VALUES (3, 'three')"):format(tbl)), T)
        assert.are.equal(3, py.await(conn:fetchval(("SELECT count(*) FROM %s"):format(tbl)), T))
        error(err)
      end)
      assert.is_false(ok)
      assert.is_true(rawequal(err, e))
      assert.is_false(conn:is_in_transaction())
      -- a PyError (a failed statement) rolls back too
      ok, e = pcall(py.with, conn:transaction(), function()
        py.await(conn:execute(("INSERT INTO %s VALUES (4, 'four')"):format(tbl)), T)
        py.await(conn:execute(("INSERT INTO %s VALUES (1, 'duplicate')"):format(tbl)), T)
      end)
      assert.is_false(ok)
      assert.are.equal("UniqueViolationError", e.type)
      assert.is_true(py.isinstance(e.exception, asyncpg.PostgresError))
      assert.are.equal("23505", e.exception.sqlstate)
    end)
    local ids = py.await(pool:fetch(("SELECT id FROM %s ORDER BY id"):format(tbl)), T)
    assert.are.equal(2, #ids)
    assert.are.equal(1, ids[0]:get("id"))
    assert.are.equal(2, ids[1]:get("id"))
  end)

  it("a transaction in a task rolled back by cancelling the task", function()
    py.run(function()
      local inserted = asyncio.Event()
      local t = py.spawn(function()
        py.with(pool:acquire(), function(conn)
          py.with(conn:transaction(), function()
            py.await(conn:execute(("INSERT INTO %s VALUES (50, 'cancelled')"):format(tbl)), T)
            inserted:set()
            py.await(conn:execute("SELECT pg_sleep(30)"), {timeout = 60})
          end)
        end)
      end)
      py.await(inserted:wait(), T)
      t:cancel()
      assert.is_false(pcall(t.await, t, T))
      assert.is_true(t:cancelled())
    end)
    assert.are.equal(0, py.await(pool:fetchval(("SELECT count(*) FROM %s WHERE id = 50"):format(tbl)), T))
  end)

  it("pool:acquire() with py.enter gives the connection back at the end of the block", function()
    local free_before = pool:get_idle_size()
    local conn_seen
    do
      local conn <close> = py.enter(pool:acquire())
      conn_seen = py.builtins.id(conn)
      assert.are.equal("entered", py.await(conn:fetchval("SELECT 'entered'"), T))
    end
    assert.is_true(pool:get_idle_size() >= free_before)
    assert.is_truthy(conn_seen)
    -- an error in the block releases it all the same
    local ok = pcall(function()
      local conn <close> = py.enter(pool:acquire())
      py.await(conn:execute("SELECT * FROM no_such_table_here"), T)
    end)
    assert.is_false(ok)
    assert.is_true(pool:get_idle_size() >= free_before)
  end)

  it("reads records with rec:get(name), py.item(rec, name) and indexes", function()
    local rec = py.await(pool:fetchrow([[
      SELECT 1 AS id, 'x' AS name, NULL::int AS nothing, 2.5::float8 AS f,
             10000000000000::bigint AS big, '{1,2}'::int[] AS arr]]), T)
    assert.are.equal("Record", py.type(rec))
    assert.are.equal(1, rec:get("id"))
    assert.are.equal("x", py.item(rec, "name"))
    assert.are.equal(1, rec[0])               -- by position, 0-based
    assert.is_nil(rec:get("nothing"))
    assert.are.equal("default", rec:get("missing", "default"))
    assert.are.equal(2.5, rec:get("f"))
    assert.are.equal(10000000000000, rec:get("big"))
    assert.are.same({1, 2}, py.totable(rec:get("arr")))
    assert.are.equal(6, #rec)
    -- rec.id is attribute access, which a Record does not have
    local ok, e = pcall(function() return rec.id end)
    assert.is_false(ok)
    assert.are.equal("AttributeError", e.type)
    -- pairs goes over the values by position; dict(rec) gives names
    local vals = {}
    for i, v in pairs(rec) do vals[i] = v end
    assert.are.equal(1, vals[1])
    assert.are.equal("x", vals[2])
    local d = py.totable(py.builtins.dict(rec:items()))
    assert.are.equal("x", d.name)
    assert.are.equal(1, d.id)
  end)

  it("iterates a cursor as a for loop, and leaves it early", function()
    py.with(pool:acquire(), function(conn)
      py.with(conn:transaction(), function()
        local sum = 0
        for rec in py.aiter(conn:cursor("SELECT g AS x FROM generate_series(1, 100) g")) do
          sum = sum + rec:get("x")
        end
        assert.are.equal(5050, sum)
        local n, last = 0, nil
        for rec in py.aiter(conn:cursor("SELECT g AS x FROM generate_series(1, 100000) g",
                                         py.kw{prefetch = 10})) do
          n = n + 1
          last = rec:get("x")
          if n == 25 then break end
        end
        assert.are.equal(25, n)
        assert.are.equal(25, last)
        -- the connection is still usable in the transaction
        assert.are.equal(7, py.await(conn:fetchval("SELECT 7"), T))
      end)
    end)
  end)

  it("a prepared statement, executemany, copy_records_to_table", function()
    py.with(pool:acquire(), function(conn)
      local st = py.await(conn:prepare("SELECT $1::int + 1"), T)
      assert.are.equal(42, py.await(st:fetchval(41), T))
      py.await(conn:executemany(("INSERT INTO %s VALUES ($1, $2)"):format(tbl),
                                {{10, "ten"}, {11, "eleven"}}), T)
      py.await(conn:copy_records_to_table(tbl, py.kw{records = {{12, "twelve"}}}), T)
      assert.are.equal("ten,eleven,twelve", py.await(conn:fetchval(
        ("SELECT string_agg(name, ',' ORDER BY id) FROM %s WHERE id >= 10"):format(tbl)), T))
    end)
  end)

  it("a pg_sleep(30) cancelled by opts.timeout is gone from pg_stat_activity", function()
    local marker = "eco_pg_sleep_" .. math.random(1, 1000000)
    local sql = "SELECT pg_sleep(30) /* " .. marker .. " */"
    local probe = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'"):format(sql)
    local monitor = py.await(asyncpg.connect(pg.dsn), T)
    local function running()
      return py.await(monitor:fetchval(probe), T)
    end
    local seen = false
    local ok, e = py.run(function()
      -- watch the query appear while it runs
      local watcher = py.spawn(function()
        for _ = 1, 200 do
          if running() > 0 then seen = true return end
          py.sleep(0.02)
        end
      end)
      local r = table.pack(pcall(py.await, pool:execute(sql), {timeout = 1.5}))
      watcher:await(T)
      return table.unpack(r, 1, 2)
    end)
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.is_true(seen, "the query never showed up in pg_stat_activity")
    local gone = false
    for _ = 1, 200 do              -- at most ~10 s
      if running() == 0 then gone = true break end
      py.sleep(0.05)
    end
    py.await(monitor:close(), T)
    assert.is_true(gone, "the cancelled query still runs on the server")
    -- and the pool still works
    assert.are.equal(1, py.await(pool:fetchval("SELECT 1"), T))
  end)

  it("errors are PyErrors with asyncpg's exception", function()
    local ok, e = pcall(py.await, pool:execute("SELECT * FROM no_such_table_here"), T)
    assert.is_false(ok)
    assert.are.equal("UndefinedTableError", e.type)
    assert.are.equal("42P01", e.exception.sqlstate)
  end)

  it("LISTEN/NOTIFY: a Lua listener feeding a plain asyncio.Queue", function()
    local conn = py.await(asyncpg.connect(pg.dsn), T)
    local q = asyncio.Queue()
    local chan = "eco_pg_chan_" .. math.random(1, 1000000)
    py.await(conn:add_listener(chan, function(_, _, channel, payload)
      q:put_nowait(channel .. ":" .. payload)
    end), T)
    py.await(pool:execute(("NOTIFY %s, 'one'"):format(chan)), T)
    py.await(pool:execute(("SELECT pg_notify('%s', 'two')"):format(chan)), T)
    assert.are.equal(chan .. ":one", py.await(q:get(), T))
    assert.are.equal(chan .. ":two", py.await(q:get(), T))
    py.await(conn:close(), T)
  end)

  it("LISTEN/NOTIFY: a Lua listener feeding a py.Queue", function()
    -- the listener runs on the loop thread's behalf; q:put_nowait must
    -- work there as asyncio.Queue.put_nowait does in a Python listener
    local conn = py.await(asyncpg.connect(pg.dsn), T)
    local q = py.Queue()
    local errors = {}
    local chan = "eco_pg_chanq_" .. math.random(1, 1000000)
    py.await(conn:add_listener(chan, function(_, _, _, payload)
      local ok, e = pcall(q.put_nowait, q, payload)
      if not ok then errors[#errors + 1] = tostring(e) end
    end), T)
    py.await(pool:execute(("NOTIFY %s, 'one'"):format(chan)), T)
    assert.are.equal("one", q:get{timeout = 10})
    py.await(conn:close(), T)
    assert.are.same({}, errors)
    assert.are.equal(0, q:qsize())
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
