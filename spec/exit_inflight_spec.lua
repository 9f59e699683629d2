-- exit_inflight_spec.lua - a script that ends while a lot is in flight: HTTP
-- requests to an aiohttp server it runs itself, 20 pg_sleep(60) queries
-- (the shared PostgreSQL fixture), 50 sleeping Python tasks and a dask
-- LocalCluster with two worker processes.  It ends by an uncaught error,
-- os.exit(3), SIGINT (host binary) or simply reaching the end of its main
-- chunk, in a new process in this spec's own mode.  Each must give the exit
-- status lua gives, within a bounded time; no process it started (dask's
-- workers and nannies, multiprocessing's helpers) may outlive it by more
-- than a few seconds; no "Task was destroyed but it is pending!" for
-- pyasync's own tasks; and the 20 queries must be gone from the server.
-- fixtures: postgres
local py = require "pyasync"
local support = require "support"
local servers = require "servers"

local q = support.shquote
local asyncpg = py.import "asyncpg"
local time = py.import "time"
local ns = py.eval("{}")
py.exec([[
import os

def _stat(pid):
    # (start time, state) of a live process, None when gone or a zombie
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]

def leftovers(procs, mark):
    """The processes still alive among those the script listed ("pid
    starttime comm" lines) plus any process carrying the run's marker in
    its environment (a descendant started after the list was written, or
    reparented to init)."""
    out = []
    for line in procs.splitlines():
        parts = line.split()
        if len(parts) >= 2 and _stat(int(parts[0])) == parts[1]:
            out.append(line)
    needle = ("PYASYNC_EXIT_MARK=%s" % mark).encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and _stat(int(d)) is not None:
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            entry = "%s (marked) %s" % (d, cmd[:120])
            if not any(line.split()[0] == d for line in out):
                out.append(entry)
    return out
]], ns)

-- The script.  arg: how it ends, the ready file, the process list file.
-- Environment: STORM_DSN, STORM_APP (the application_name of its queries),
-- PYASYNC_SOURCE.
local SCRIPT = [==[
local py = require "pyasync"
local how, ready, procs = arg[1], arg[2], arg[3]
py.import("sys").path:insert(0, os.getenv("PYASYNC_SOURCE") .. "/spec")
py.exec([[
import asyncio, os

async def sleeper(i):
    await asyncio.sleep(3600)

def descendants():
    # "pid starttime comm" of every descendant of this process
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append((int(d), rest[19], st[st.index("(") + 1:st.rindex(")")]))
    out, todo = [], [os.getpid()]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return "\n".join("%d %s %s" % c for c in out)
]])
local pyservers = py.import "pyservers"
local aiohttp = py.import "aiohttp"
local asyncpg = py.import "asyncpg"
local distributed = py.import "distributed"
local time = py.import "time"

local srv = py.await(pyservers.start_http(), {timeout = 30})
local session = aiohttp.ClientSession()
for _ = 1, 10 do py.start(session:get(srv.url .. "/slow?d=60")) end
local pool = py.await(asyncpg.create_pool(os.getenv("STORM_DSN"), py.kw{min_size = 20, max_size = 20,
  server_settings = {application_name = os.getenv("STORM_APP")}}), {timeout = 60})
for _ = 1, 20 do py.start(pool:fetchval("SELECT pg_sleep(60)")) end
for i = 1, 50 do py.start(py.main.sleeper(i)) end
local cluster = py.await(distributed.LocalCluster(py.kw{n_workers = 2, processes = true,
  asynchronous = true, dashboard_address = py.None}), {timeout = 90})
assert(#cluster.workers == 2, "dask workers: " .. #cluster.workers)

-- ready once the 20 queries run in the server and the 10 handlers are busy
local watcher = py.await(asyncpg.connect(os.getenv("STORM_DSN")), {timeout = 30})
local sql = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND application_name = $1"
local stop = time.monotonic() + 60
while time.monotonic() < stop do
  local n = py.await(watcher:fetchval(sql, os.getenv("STORM_APP")), {timeout = 30})
  if n == 20 and srv.active == 10 then break end
  py.sleep(0.02)
end
py.await(watcher:close(), {timeout = 30})
local f = assert(io.open(procs, "w"))
f:write(py.main.descendants(), "\n")
f:close()
f = assert(io.open(ready, "w"))
f:write(py.import("os").getpid(), "\n")
f:close()
print("ready", srv.active)
io.stdout:flush()
if how == "error" then error("boom with work in flight", 0)
elseif how == "exit" then os.exit(3)
elseif how == "sigint" then py.await(py.import("asyncio").sleep(3600))
end
]==]

local readall = support.readall

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Runs SCRIPT ending as `how`, in `mode`; returns a table of what happened.
-- timeout 120 bounds the process; the SIGINT is sent to the script's own
-- pid once it has written its ready file (bounded wait).
local function run(how, mode, dsn, app, src)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  local path, ready, procs = dir .. "/script.lua", dir .. "/ready", dir .. "/procs"
  local out, err, rcfile = dir .. "/out", dir .. "/err", dir .. "/rc"
  writefile(path, src or SCRIPT)
  local mark = ("%d-%d"):format(math.floor(time.time() * 1000), math.random(1, 1e9))
  local cmd = (mode == "host") and q(support.build .. "/pyasync") or "lua5.4"
  local env = ("env STORM_DSN=%s STORM_APP=%s PYASYNC_EXIT_MARK=%s PYASYNC_SOURCE=%s"):format(
    q(dsn), q(app), q(mark), q(support.source))
  local sh = ("timeout 120 %s %s %s %s %s %s </dev/null >%s 2>%s & tpid=$!; "):format(
    env, cmd, q(path), q(how), q(ready), q(procs), q(out), q(err))
  if how == "sigint" then
    sh = sh .. ("i=0; while [ ! -s %s ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; "
      .. "[ -s %s ] && kill -INT $(head -n 1 %s); "):format(q(ready), q(ready), q(ready))
  end
  sh = sh .. ("wait $tpid; echo $? >%s"):format(q(rcfile))
  local t0 = time.monotonic()
  os.execute(sh)
  local r = {elapsed = time.monotonic() - t0, out = readall(out), err = readall(err),
             code = tonumber(readall(rcfile)), procs = readall(procs), mark = mark}
  -- what outlives it: bounded wait for every descendant to be gone
  local stop = time.monotonic() + 10
  repeat
    r.left = py.totable(ns.leftovers(r.procs, mark))
    if #r.left > 0 then py.sleep(0.1) end
  until #r.left == 0 or time.monotonic() > stop
  os.execute("rm -rf " .. q(dir))
  return r
end

-- "Task was destroyed but it is pending!" reports naming pyasync's own
-- tasks (its helper module), and the others.
local function destroyed(err)
  local ours, others = {}, {}
  for line in err:gmatch("[^\n]*Task was destroyed but it is pending![^\n]*\n?[^\n]*") do
    if line:find("pyasync", 1, true) or line:find("helper.py", 1, true) then
      ours[#ours + 1] = line
    else
      others[#others + 1] = line
    end
  end
  return ours, others
end

-- A smaller script: 4 Python threads and a loop-thread coroutine calling a
-- Lua function without pause while the script ends.
local THREADS_SCRIPT = [==[
local py = require "pyasync"
local how, ready = arg[1], arg[2]
py.exec([[
import asyncio, threading
def worker(fn):
    while True:
        try:
            fn(1)
        except Exception:
            pass
def start(fn, n):
    for _ in range(n):
        threading.Thread(target=worker, args=(fn,), daemon=True).start()
async def loop_caller(fn):
    while True:
        fn(2)
        await asyncio.sleep(0)
]])
local calls = 0
local function f(x) calls = calls + 1; return x end
py.main.start(f, 4)
py.start(py.main.loop_caller(f))
while calls < 1000 do py.await(py.eval("asyncio.sleep(0.01)")) end
local fh = assert(io.open(ready, "w"))
fh:write(py.import("os").getpid(), "\n")
fh:close()
print("ready")
io.stdout:flush()
if how == "error" then error("boom with callers", 0)
elseif how == "exit" then os.exit(3)
elseif how == "sigint" then py.await(py.import("asyncio").sleep(3600))
end
]==]

local EXPECT = {error = 1, exit = 3, sigint = 130, ["end"] = 0}
local HOWS = {"error", "exit", "sigint", "end"}

describe("exit with work in flight (" .. support.mode .. ")", function()
  local pg = servers.postgres()
  for _, how in ipairs(HOWS) do
    local skip = how == "sigint" and support.mode ~= "host"
    local test = skip and pending or it
    test(("ends by %s: status %d, no process left, queries gone"):format(how, EXPECT[how]), function()
      local app = ("pyasync_exit_%s_%s_%d"):format(how, support.mode, math.random(1, 1e9))
      local r = run(how, support.mode, pg.dsn, app)
      -- the queries: gone from the server (bounded poll, well under the 60 s
      -- a forgotten pg_sleep(60) would stay)
      local active
      py.run(function()
        local c = py.await(asyncpg.connect(pg.dsn), {timeout = 30})
        local sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'"
        local stop = time.monotonic() + 15
        repeat
          active = py.await(c:fetchval(sql, app), {timeout = 30})
          if active > 0 then py.sleep(0.05) end
        until active == 0 or time.monotonic() > stop
        -- leave the fixture clean for the next specs whatever happened
        py.await(c:execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app),
                 {timeout = 30})
        py.await(c:close(), {timeout = 30})
      end)
      local ours, others = destroyed(r.err)
      io.stderr:write(("# exit_inflight %s/%s: status %s in %.1fs; %d descendants listed; %d left; "
        .. "%d queries active after; %d destroyed-pending reports (%d pyasync's)\n"):format(
        support.mode, how, tostring(r.code), r.elapsed, select(2, r.procs:gsub("\n", "")), #r.left,
        active, #ours + #others, #ours))
      assert.are_not.equal(124, r.code, "timed out:\n" .. r.err)
      assert.truthy(r.out:find("^ready\t10\n"), "not ready:\n" .. r.out .. "\n" .. r.err)
      assert.are.equal(EXPECT[how], r.code, r.err)
      if how == "error" then assert.truthy(r.err:find("boom with work in flight", 1, true), r.err) end
      assert.truthy(r.procs:find("%d"), "the script listed no child process (dask workers?)")
      assert.are.same({}, r.left, "processes outlived the script")
      assert.are.same({}, ours, "pyasync's tasks destroyed while pending")
      assert.are.equal(0, active, "pg_sleep queries still running after the script ended")
    end)
  end
end)

describe("exit while threads call Lua (" .. support.mode .. ")", function()
  for _, how in ipairs(HOWS) do
    local skip = how == "sigint" and support.mode ~= "host"
    local test = skip and pending or it
    test(("ends by %s: status %d, no hang"):format(how, EXPECT[how]), function()
      local r = run(how, support.mode, "", "", THREADS_SCRIPT)
      assert.are_not.equal(124, r.code, "timed out:\n" .. r.err)
      assert.are.equal("ready\n", r.out, r.err)
      assert.are.equal(EXPECT[how], r.code, r.err)
      assert.are.same({}, r.left)
    end)
  end
end)
