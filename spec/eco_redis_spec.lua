-- eco_redis_spec.lua - redis.asyncio (redis-py 4.3) used from Lua
-- (docs/ecosystem.md) against the shared redis fixture: set/get, pipelines,
-- concurrent commands, pubsub as a for loop left early with break, and the
-- subscription cleaned up afterwards.
-- fixtures: redis
-- uvloop: yes
local py = require "pyasync"
local support = require "support"
local servers = require "servers"

local redis = py.import "redis.asyncio"

local T = {timeout = 10}
local asyncio = py.import "asyncio"

-- fn() under asyncio.timeout(s): bounds waits that take no timeout option
-- (the steps of a py.aiter loop)
local function within(s, fn)
  return py.with(py.onloop(asyncio.timeout, s), fn)
end
local info = servers.redis()
-- our own key prefix in the shared server
local prefix = ("eco_redis:%d:%d:"):format(os.time(), math.random(1, 1000000))

describe("redis.asyncio from Lua", function()
  local r

  setup(function()
    r = redis.from_url(info.url, py.kw{decode_responses = true})
  end)

  teardown(function()
    if r then
      local keys = py.await(r:keys(prefix .. "*"), T)
      if #keys > 0 then py.await(py.call(r.delete, py.totable(keys)), T) end
      py.await(r:close(), T)
    end
  end)

  it("sets and gets", function()
    assert.is_true(py.await(r:set(prefix .. "k", "v"), T))
    assert.are.equal("v", py.await(r:get(prefix .. "k"), T))
    assert.is_nil(py.await(r:get(prefix .. "missing"), T))
    assert.are.equal(1, py.await(r:delete(prefix .. "k"), T))
    assert.are.equal(5, py.await(r:incrby(prefix .. "n", 5), T))
    py.await(r:hset(prefix .. "h", py.kw{mapping = {a = "1", b = "2"}}), T)
    local h = py.totable(py.await(r:hgetall(prefix .. "h"), T))
    assert.are.same({a = "1", b = "2"}, h)
  end)

  it("runs commands concurrently with py.gather, also in tasks", function()
    local sets = {}
    for i = 1, 30 do sets[i] = r:set(prefix .. "c" .. i, tostring(i * i)) end
    py.gather(sets, T)
    local gets = {}
    for i = 1, 30 do gets[i] = r:get(prefix .. "c" .. i) end
    local got = py.gather(gets, T)
    for i = 1, 30 do assert.are.equal(tostring(i * i), got[i]) end
    local sum = py.run(function()
      local ts = {}
      for i = 1, 5 do ts[i] = py.spawn(function() return py.await(r:incr(prefix .. "shared"), T) end) end
      py.gather(ts, T)
      return py.await(r:get(prefix .. "shared"), T)
    end)
    assert.are.equal("5", sum)
  end)

  it("a pipeline", function()
    local pipe = r:pipeline()
    pipe:set(prefix .. "p", 1)
    pipe:incr(prefix .. "p")
    pipe:get(prefix .. "p")
    local res = py.totable(py.await(pipe:execute(), T))
    assert.are.same({true, 2, "2"}, res)
    -- a transaction pipeline as a context manager, commands chained
    local res2 = py.with(r:pipeline(py.kw{transaction = true}), function(p)
      p:set(prefix .. "q", "x"):append(prefix .. "q", "y"):get(prefix .. "q")
      return py.totable(py.await(p:execute(), T))
    end)
    assert.are.same({true, 2, "xy"}, res2)
  end)

  it("pubsub as a for loop over py.aiter(pubsub:listen()), left with break and cleaned up", function()
    local chan = prefix .. "chan"
    local monitor = redis.from_url(info.url, py.kw{decode_responses = true})
    local function subscribers()
      local n = py.await(monitor:pubsub_numsub(chan), T)
      return n[0][1]
    end
    local pubsub_ref
    local got = py.with(r:pubsub(), function(ps)
      pubsub_ref = ps
      py.await(ps:subscribe(chan), T)
      assert.are.equal(1, subscribers())
      local publisher = py.spawn(function()
        for i = 1, 5 do py.await(r:publish(chan, "m" .. i), T) end
      end)
      local got = {}
      within(10, function()
        for msg in py.aiter(ps:listen()) do
          if msg.type == "message" then
            assert.are.equal(chan, msg.channel)
            got[#got + 1] = msg.data
            if #got == 3 then break end
          end
        end
      end)
      publisher:await(T)
      -- the loop's generator was closed, the pubsub is still usable
      local nxt = py.await(ps:get_message(py.kw{timeout = 5}), T)
      assert.are.equal("m4", nxt.data)
      return got
    end)
    assert.are.same({"m1", "m2", "m3"}, got)
    -- leaving py.with reset the pubsub: no channels, its connection released
    assert.are.equal(0, #pubsub_ref.channels)
    assert.is_nil(pubsub_ref.connection)
    -- and the server sees no subscriber left (it learns when the socket closes)
    local left = -1
    for _ = 1, 100 do           -- at most ~5 s
      left = subscribers()
      if left == 0 then break end
      py.sleep(0.05)
    end
    assert.are.equal(0, left)
    py.await(monitor:close(), T)
  end)

  it("pubsub with py.enter, the loop left by an error", function()
    local chan = prefix .. "chan2"
    local ps_ref
    local ok, e = pcall(function()
      local ps <close>, v = py.enter(r:pubsub(py.kw{ignore_subscribe_messages = true}))
      ps_ref = v
      py.await(ps:subscribe(chan), T)
      py.spawn(function() py.await(r:publish(chan, "boom"), T) end)
      within(10, function()
        for msg in py.aiter(ps:listen()) do
          error("got " .. msg.data)
        end
      end)
    end)
    assert.is_false(ok)
    assert.matches("got boom$", e)
    assert.are.equal(0, #ps_ref.channels)
    assert.is_nil(ps_ref.connection)
  end)

  it("a timeout on a blocking command cancels it", function()
    local ok, e = pcall(py.await, r:blpop(prefix .. "never", 30), {timeout = 0.2})
    assert.is_false(ok)
    assert.are.equal("TimeoutError", e.type)
    assert.is_true(py.await(r:ping(), T))
  end)

  it("errors are PyErrors with redis's exception", function()
    py.await(r:set(prefix .. "str", "x"), T)
    local ok, e = pcall(py.await, r:incr(prefix .. "str"), T)
    assert.is_false(ok)
    assert.are.equal("ResponseError", e.type)
    assert.is_true(py.isinstance(e.exception, py.import("redis.exceptions").RedisError))
  end)

  it("left nothing in flight", function()
    assert.is_true(support.drained())
  end)
end)
