-- pyasync/stream.lua - async iteration (API.md section 6): py.aiter, a
-- generic-for over an async iterable, lazy (one __anext__ per step) or
-- prefetching through a ring (src/ring.c); leaving the loop early awaits
-- aclose() (the iterator is the for loop's to-be-closed value).

local core = require "pyasync.core"
local S = require "pyasync.sched"

local M = {}
local iserror = core.iserror
local await_call, await_raw = S.await_call, S.await_raw

local AIter = {}
AIter.__index = AIter

local function aiter_next(st)
  local i = st.i
  if i < st.n then
    i = i + 1
    st.i = i
    local v = st.buf[i]
    st.buf[i] = nil
    return v
  end
  if st.done then return nil end
  local step = st.step
  if not step then step = st.src.step; st.step = step end
  local ok, batch = await_call(nil, step)
  if not ok then
    -- the iterator raised: it is finished.  A cancelled step (the task was
    -- cancelled) may leave a prefetch pump running: __close acloses it.
    if not iserror(batch, "CancelledError") then st.done = true end
    error(batch, 0)
  end
  if batch.n == 0 then
    st.done = true
    return nil
  end
  st.buf, st.i, st.n = batch, 1, batch.n
  local v = batch[1]
  batch[1] = nil
  return v
end

-- Prefetch: the items come through a ring (src/ring.c) without the GIL; Lua
-- waits only while it is empty.
local ring_pop, ring_wait, ring_disarm = core.ring_pop, core.ring_wait, core.ring_disarm

local function ring_slow(st)
  if st.done then return nil end
  local ring = st.ring
  if not st.started then
    -- not done if this fails (cancelled, or cannot wait here): __close or
    -- __gc then acloses the pump, and the next step starts it again
    local ok, e = await_call(nil, st.src.start)
    if not ok then error(e, 0) end
    st.started = true
  end
  while true do
    local v = ring_pop(ring)
    if v ~= nil then return v end
    if st.waiting then
      error("pyasync: this async iterator is already advanced by another task", 2)
    end
    local why = S.cannot_wait()
    local okw, id = pcall(ring_wait, ring, not why and not S.has_ready())
    if not okw then st.done = true; error(id, 0) end  -- the generator's error
    if id == false then st.done = true; return nil end
    if id and why then
      ring_disarm(ring, id)  -- or its completion comes for nobody: harmless
      error(why, 2)
    end
    if id then
      local w = S.new_waiter(id)
      -- a cancelled wait ends now, unless the item is already on its way
      w.on_cancel = function(_, err)
        if ring_disarm(ring, id) then
          S.waiters[id] = nil
          S.wake(w, false, err)
        end
      end
      st.waiting = true
      local ok, e = S.wait(w)
      st.waiting = nil
      if not ok then error(e, 0) end
    end
  end
end

local function ring_next(st)
  local v = ring_pop(st.ring)
  if v ~= nil then return v end
  return ring_slow(st)
end

-- Early exit (break, return, goto, error): aclose() has run before the next
-- statement.  Exhaustion or an error from the generator closes nothing.
function AIter.__close(st, err)
  if st.done or st.closed then return end
  st.closed = true
  if not S.can_wait() then
    core.aclose_nowait(st.src)
    return
  end
  local ok, e = await_raw(st.src:aclose())
  if not ok then
    local cancelled = iserror(e, "CancelledError")
    -- the task was cancelled at this very wait, perhaps before aclose()
    -- even started: it still runs, in the background
    if cancelled then core.aclose_nowait(st.src) end
    if err == nil then error(e, 0) end
    if not cancelled then
      io.stderr:write("pyasync: aclose() failed while unwinding: ", tostring(e), "\n")
    end
  end
end

-- An abandoned iterator: aclose() without waiting.
function AIter.__gc(st)
  if not st.done and not st.closed then
    st.closed = true
    core.aclose_nowait(st.src)
  end
end

--- py.aiter(x [, opts]) -> generic-for iterator over an async iterable.
function M.aiter(x, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'aiter' (table expected, got " .. type(opts) .. ")", 2)
  end
  local pf = opts and opts.prefetch
  if pf ~= nil and (math.type(pf) ~= "integer" or pf < 1) then
    error("bad argument #2 to 'aiter' (prefetch must be a positive integer)", 2)
  end
  if type(x) ~= "userdata" then
    error("bad argument #1 to 'aiter' (async iterable expected, got " .. type(x) .. ")", 2)
  end
  local src, ring = core.aiter_open(x, pf)
  local st = setmetatable({src = src, ring = ring, buf = nil, i = 0, n = 0,
                           done = false}, AIter)
  return ring and ring_next or aiter_next, st, nil, st
end

return M
