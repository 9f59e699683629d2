-- pyasync/embed.lua - the Lua half of the C API for hosts with their own
-- event loop (src/embed.c, API.md section 9): the tasks a host starts with
-- pyasync_spawn, and pyasync_step, one turn of the scheduler that runs what
-- is ready and never waits.  docs/embedding.md describes the pattern.

local S = require "pyasync.sched"

local E = {}
local pack = table.pack

-- Host tasks that failed, oldest first: pyasync_step hands over one per call.
local failed, failed_head, failed_tail = {}, 1, 0

local function note_failure(t)
  if t.state == "failed" then
    failed_tail = failed_tail + 1
    failed[failed_tail] = t
  end
end

--- E.spawn(fn, ...) -> Task: pyasync_spawn.  Not awaited by anyone: its
--- error goes to the host through E.step (or, if the host never steps
--- again, to the report of unretrieved failures when the state closes).
function E.spawn(fn, ...)
  S.check_fn(fn, "pyasync_spawn")
  local t = S.lua_task(fn, pack(...))
  S.on_done(t, note_failure)
  return t
end

--- E.step() -> ready, live | ready, false, err: pyasync_step.  Runs the
--- ready tasks and polls without blocking, twice when the first poll woke
--- tasks, so a completion is handled by the step that received it; the
--- tasks woken by the second poll wait for the next step (`ready` says so,
--- and C makes the fd readable).  Never loops further: a task that yields
--- in a loop must not hold up the host's frame.
function E.step()
  S.step(false)
  if S.has_ready() then S.step(false) end
  if failed_head <= failed_tail then
    local t = failed[failed_head]
    failed[failed_head] = nil
    failed_head = failed_head + 1
    if failed_head > failed_tail then failed_head, failed_tail = 1, 0 end
    S.unretrieved[t] = nil  -- handed to the host now
    return S.has_ready(), false, t.error
  end
  return S.has_ready(), S.live()
end

--- E.open(): once, when C first loads this module.  One non-blocking poll
--- runs libuv's loop once, which registers its wake-up with the backend fd
--- (libuv adds watchers to epoll on its first poll), so that the fd works
--- before the first pyasync_step.  Ready tasks are left to that step.
function E.open()
  if not S.has_ready() then S.step(false) end
end

E.has_ready = S.has_ready

return E
