-- server_dies_spec.lua - real servers dying under pyasync: a private
-- redis-server SIGKILLed during a pubsub `for` loop over py.aiter(...) ends
-- the loop with a clean ConnectionError within seconds, and a new client
-- works after the restart; a private PostgreSQL cluster restarted under an
-- asyncpg pool fails the queries in flight and those issued while it is
-- down with clean errors (PyErrors, never a hang), then works again.
-- uvloop: yes
local py = require "pyasync"
local servers = require "servers"

local aioredis = py.import "redis.asyncio"
local redis_exc = py.import "redis.exceptions"
local asyncpg = py.import "asyncpg"
local asyncio = py.import "asyncio"
local subprocess = py.import "subprocess"
local time = py.import "time"

-- a spec-wide bound: a hang fails the case instead of blocking ctest
local BOUND = 60

local function bounded(fn)
  local t = py.spawn(fn)
  local ok, e = pcall(t.await, t, {timeout = BOUND})
  if not ok then error(e, 0) end
  return e
end

describe("redis-server killed during a pubsub loop", function()
  it("ends the loop with a ConnectionError; a new client works after restart", function()
    local r <close> = servers.start_redis()
    local got, err, took, after, old_ok, old_e
    py.run(function()
      bounded(function()
        local client = aioredis.from_url(r.url)
        assert.is_true(py.await(client:ping(), {timeout = 10}))
        local pubsub = client:pubsub()
        py.await(pubsub:subscribe("storm:ch"), {timeout = 10})
        got = {}
        local t0
        local ok, e = pcall(function()
          for msg in py.aiter(pubsub:listen()) do
            got[#got + 1] = msg.type .. ":" .. tostring(msg.data)
            if msg.type == "subscribe" then
              py.await(client:publish("storm:ch", "before"), {timeout = 10})
            elseif msg.data == "before" then
              t0 = time.monotonic()
              r:kill()  -- SIGKILL, and waits until it is gone
            end
          end
        end)
        took = t0 and time.monotonic() - t0
        assert.is_false(ok, "the loop ended without an error")
        err = e
        -- the old client's pool has a dead connection: it must fail cleanly or
        -- reconnect, not hang
        r:restart()
        local c2 = aioredis.from_url(r.url)
        after = py.await(c2:ping(), {timeout = 10})
        py.await(c2:set("storm:k", "v"), {timeout = 10})
        assert.are.equal("v", py.await(c2:get("storm:k"), {timeout = 10}))
        old_ok, old_e = pcall(py.await, client:ping(), {timeout = 10})
        pcall(py.await, pubsub:reset(), {timeout = 10})
        py.await(c2:close(), {timeout = 10})
        pcall(py.await, client:close(), {timeout = 10})
      end)
    end)
    assert.are.same({"subscribe:1", "message:before"}, got)
    assert.is_true(py.iserror(err), "not a PyError: " .. tostring(err))
    assert.is_true(py.iserror(err, redis_exc.ConnectionError), tostring(err))
    assert.is_true(took < 10, ("the loop took %.1fs to see the server die"):format(took))
    assert.is_true(after)
    -- the old client reconnects or fails cleanly; it does not hang
    assert.is_true(old_ok or (py.iserror(old_e) and not py.iserror(old_e, "TimeoutError")), tostring(old_e))
  end)
end)

describe("PostgreSQL restarted under an asyncpg pool", function()
  it("fails the queries in flight with PyErrors, then works again", function()
    local pg <close> = servers.start_postgres()
    local inflight_errs, after = {}, {}
    py.run(function()
      bounded(function()
        local pool = py.await(asyncpg.create_pool(pg.dsn, py.kw{min_size = 3, max_size = 3}), {timeout = 30})
        assert.are.equal(1, py.await(pool:fetchval("SELECT 1"), {timeout = 10}))
        local watcher = py.await(asyncpg.connect(pg.dsn), {timeout = 30})
        local inflight = {}
        for i = 1, 3 do inflight[i] = py.start(pool:fetchval("SELECT pg_sleep(30)")) end
        -- all three running in the server before it goes
        local stop = time.monotonic() + 10
        local running = 0
        while running < 3 and time.monotonic() < stop do
          running = py.await(watcher:fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"),
            {timeout = 10})
          if running < 3 then py.sleep(0.02) end
        end
        assert.are.equal(3, running)
        pg:restart()
        for i = 1, 3 do
          local ok, e = pcall(inflight[i].await, inflight[i], {timeout = 20})
          assert.is_false(ok, "a query survived the restart")
          inflight_errs[i] = e
        end
        for i = 1, 3 do
          local ok, v = pcall(py.await, pool:fetchval("SELECT $1::int", i), {timeout = 20})
          after[i] = ok and v or v
        end
        pcall(py.await, watcher:close(), {timeout = 10})
        -- terminate, not close: see the note on asyncpg below
        py.onloop(pool.terminate)
      end)
    end)
    for i = 1, 3 do
      local e = inflight_errs[i]
      assert.is_true(py.iserror(e), "not a PyError: " .. tostring(e))
      assert.is_false(py.iserror(e, "TimeoutError"), "a query hung: " .. tostring(e))
      assert.is_false(py.iserror(e, "CancelledError"), tostring(e))
    end
    -- the pool reconnects: after the restart every query is answered
    assert.are.same({1, 2, 3}, after)
  end)

  it("queries while it restarts fail with PyErrors, never hang, then succeed", function()
    local pg <close> = servers.start_postgres()
    local errors, ok_before, ok_after, restart_rc = {}, 0, 0, nil
    py.run(function()
      bounded(function()
        local pool = py.await(asyncpg.create_pool(pg.dsn, py.kw{min_size = 2, max_size = 2}), {timeout = 30})
        assert.are.equal(1, py.await(pool:fetchval("SELECT 1"), {timeout = 10}))
        -- the restart runs in a Python thread while Lua keeps querying
        local restart = py.start(asyncio.to_thread(subprocess.run, {pg.script, "restart", pg.dir},
          py.kw{stdout = subprocess.DEVNULL, stderr = subprocess.DEVNULL, stdin = subprocess.DEVNULL}))
        local n = 0
        while not restart:done() do
          n = n + 1
          local ok, e = pcall(py.await, pool:fetchval("SELECT $1::int", n), {timeout = 20})
          if ok then
            assert.are.equal(n, e)
            if #errors == 0 then ok_before = ok_before + 1 else ok_after = ok_after + 1 end
          else
            errors[#errors + 1] = e
          end
          py.sleep(0.01)
        end
        restart_rc = restart:result().returncode
        -- once it is back, queries work again (a few may still meet
        -- connections the pool has not yet found dead)
        local good, stop = 0, time.monotonic() + 20
        while good < 5 and time.monotonic() < stop do
          n = n + 1
          local ok, e = pcall(py.await, pool:fetchval("SELECT $1::int", n), {timeout = 20})
          if ok then
            assert.are.equal(n, e)
            good = good + 1
          else
            errors[#errors + 1] = e
          end
        end
        ok_after = ok_after + good
        -- Not pool:close(): after a server restart asyncpg 0.27's graceful
        -- Pool.close() sometimes never returns (3 runs in 10 with plain
        -- asyncio.run and no pyasync at all): a third-party hang, not what
        -- this spec is about.  terminate() closes the connections at once.
        py.onloop(pool.terminate)
      end)
    end)
    assert.are.equal(0, restart_rc)
    for _, e in ipairs(errors) do
      assert.is_true(py.iserror(e), "not a PyError: " .. tostring(e))
      assert.is_false(py.iserror(e, "TimeoutError"), "a query hung: " .. tostring(e))
    end
    assert.is_true(ok_after >= 5)
    io.stderr:write(("# server_dies: %d queries ok before, %d errors during the restart (%s), %d ok after\n")
      :format(ok_before, #errors, #errors > 0 and errors[1].type or "-", ok_after))
  end)
end)
