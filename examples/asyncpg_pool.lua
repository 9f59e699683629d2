-- asyncpg_pool.lua - an asyncpg pool made in Lua: concurrent queries, a
-- transaction committed and one rolled back by a Lua error, a cursor as a
-- for loop, Record fields.
-- fixtures: postgres
-- ctest starts the shared PostgreSQL server and sets POSTGRES_DSN; by hand:
--   tools/fixtures/postgres.sh start /tmp/pg && set -a && . /tmp/pg/env && set +a
local py = require "pyasync"

local asyncpg = py.import "asyncpg"
local T = {timeout = 10}

local dsn = assert(os.getenv("POSTGRES_DSN"), "set POSTGRES_DSN (see the header)")
local pool = py.await(asyncpg.create_pool(dsn, py.kw{min_size = 1, max_size = 4}), T)

-- concurrent queries: the pool hands each its own connection
local queries = {}
for i = 1, 4 do queries[i] = pool:fetchval("SELECT $1::int * 10", i) end
local r = py.gather(queries, T)
print("concurrent:", r[1], r[2], r[3], r[4])

py.with(pool:acquire(), function(conn)
  -- a temporary table lives on this connection only
  py.await(conn:execute("CREATE TEMP TABLE fruit (id int PRIMARY KEY, name text)"), T)

  py.with(conn:transaction(), function()
    py.await(conn:executemany("INSERT INTO fruit VALUES ($1, $2)",
                              {{1, "apple"}, {2, "banana"}, {3, "cherry"}}), T)
  end)
  print("committed:", py.await(conn:fetchval("SELECT count(*) FROM fruit"), T))

  local ok, err = pcall(py.with, conn:transaction(), function()
    py.await(conn:execute("DELETE FROM fruit"), T)
    error("changed my mind", 0)  -- level 0: no position in the message
  end)
  print("rolled back:", ok, err)
  print("still there:", py.await(conn:fetchval("SELECT count(*) FROM fruit"), T))

  -- Records: fields by name with rec:get(...) or py.item(rec, ...), since
  -- rec.name would be attribute access
  local rec = py.await(conn:fetchrow("SELECT id, name FROM fruit WHERE id = 2"), T)
  print("record:", rec:get("id"), py.item(rec, "name"), rec[1])

  -- a cursor (inside a transaction) as a for loop, left early
  py.with(conn:transaction(), function()
    for row in py.aiter(conn:cursor("SELECT id, name FROM fruit ORDER BY id")) do
      print("cursor:", row:get("id"), row:get("name"))
      if row:get("id") == 2 then break end
    end
  end)
end)

-- a query that outlives its timeout is cancelled on the server
local ok, e = pcall(py.await, pool:execute("SELECT pg_sleep(30)"), {timeout = 0.2})
print("timeout:", ok, e.type)
print("pool still works:", py.await(pool:fetchval("SELECT 'yes'"), T))

py.await(pool:close(), T)
