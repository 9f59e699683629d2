-- redis_pubsub.lua - redis.asyncio from Lua: set/get, a pipeline, and pubsub
-- as a for loop over pubsub:listen(), left with break; leaving py.with
-- unsubscribes and gives the connection back.
-- fixtures: redis
-- ctest starts the shared redis server and sets REDIS_URL; by hand:
--   tools/fixtures/redis.sh start /tmp/rd && set -a && . /tmp/rd/env && set +a
local py = require "pyasync"

local redis = py.import "redis.asyncio"
local asyncio = py.import "asyncio"
local T = {timeout = 10}

local url = assert(os.getenv("REDIS_URL"), "set REDIS_URL (see the header)")
local r = redis.from_url(url, py.kw{decode_responses = true})
local prefix = ("example:%d:"):format(py.import("os").getpid())  -- keys of our own

py.await(r:set(prefix .. "greeting", "hello from Lua"), T)
print("get:", py.await(r:get(prefix .. "greeting"), T))

local pipe = r:pipeline()
pipe:incr(prefix .. "counter")
pipe:incrby(prefix .. "counter", 10)
pipe:get(prefix .. "counter")
local res = py.await(pipe:execute(), T)
print("pipeline:", res[0], res[1], res[2])

local channel = prefix .. "news"
local pubsub = r:pubsub()
py.with(pubsub, function(ps)
  py.await(ps:subscribe(channel), T)
  -- a publisher task; the subscription is in place before it starts
  local publisher = py.spawn(function()
    for i = 1, 5 do py.await(r:publish(channel, "item " .. i), T) end
  end)
  local seen = 0
  -- asyncio.timeout bounds the loop (py.onloop: it needs the running loop)
  py.with(py.onloop(asyncio.timeout, 10), function()
    for msg in py.aiter(ps:listen()) do
      if msg.type == "message" then
        print("received:", msg.data)
        seen = seen + 1
        if seen == 3 then break end
      end
    end
  end)
  publisher:await(T)
end)
print("channels after:", #pubsub.channels)

py.await(r:delete(prefix .. "greeting", prefix .. "counter"), T)
py.await(r:close(), T)
