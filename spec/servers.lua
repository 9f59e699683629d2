-- servers.lua - real servers for the specs (no mocks).
--
--   local servers = require "servers"
--
-- Shared fixtures, started by ctest before the spec runs (declare them in
-- the spec's first 15 lines: `-- fixtures: postgres redis`):
--   servers.postgres()  -> {host, port, user, database, dsn, socket_dir, ...}
--   servers.redis()     -> {host, port, url, ...}
-- Both raise an error (a failed test, never a skip) when the fixture is not
-- running.  Share them politely: own database names, own key prefixes.
--
-- Private servers, for specs that kill or restart one (nobody else sees it):
--   local r = servers.start_redis()      -- r.host, r.port, r.url
--   r:kill()                             -- SIGKILL; r:restart() brings it back
--   r:restart()                          -- same port
--   r:stop()                             -- safe to call twice
--   local pg = servers.start_postgres()  -- pg.dsn, pg.port, pg:restart(), pg:stop()
-- Handles are to-be-closed values (`local r <close> = servers.start_redis()`).
-- A watcher started with each private server stops it once this process
-- closes the handle, exits or crashes (tools/fixtures/watch.sh).  (A child
-- forked without exec, e.g. Python multiprocessing's fork, inherits the
-- watcher's pipe and delays that until it exits too.)
--
-- Uses only os.execute/io.popen and tools/fixtures/*.sh.  Paths come from
-- PYASYNC_BUILD and PYASYNC_SOURCE (set by ctest; defaults "build" and ".").
-- The shared fixtures' state is in $PYASYNC_FIXTURES when set (a sanitizer
-- run builds its own tree but uses the main build's fixtures), else in
-- $PYASYNC_BUILD/fixtures.
local M = {}

M.build = os.getenv("PYASYNC_BUILD") or "build"
M.fixtures = os.getenv("PYASYNC_FIXTURES") or (M.build .. "/fixtures")
M.source = os.getenv("PYASYNC_SOURCE") or "."

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function readall(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs a shell command with its output going to a file, never to a pipe we
-- read (a daemon that inherited the pipe would keep the read from ending).
-- Returns success, the output, the exit code.
local function run(cmd)
  local out = os.tmpname()
  local ok, _, code = os.execute("{ " .. cmd .. " ; } </dev/null >" .. shquote(out) .. " 2>&1")
  local text = readall(out)
  os.remove(out)
  return ok == true, text, code
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Absolute paths: the watcher runs from /.
local abs_cache = {}
local function abs(path)
  if not abs_cache[path] then
    local ok, out = run("cd " .. shquote(path) .. " && pwd -P")
    if not ok then error("servers: no such directory: " .. path .. "\n" .. out, 3) end
    abs_cache[path] = trim(out)
  end
  return abs_cache[path]
end

local function fixtures_dir()
  return abs(M.source) .. "/tools/fixtures"
end

local function script(kind)
  return fixtures_dir() .. "/" .. kind .. ".sh"
end

-- The table returned by DIR/info.lua (a chunk with no access to globals).
local function load_info(path)
  local chunk, err = loadfile(path, "t", {})
  if not chunk then return nil, err end
  local ok, info = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(info) end
  if type(info) ~= "table" then return nil, path .. ": did not return a table" end
  return info
end

local function shared(kind)
  local dir = M.fixtures .. "/" .. kind
  local info, err = load_info(dir .. "/info.lua")
  if not info then
    error(("the shared %s fixture is not running (%s).\n"
      .. "A spec that needs it says so in its first 15 lines:  -- fixtures: %s\n"
      .. "and ctest runs fixture:%s:start first.  By hand:  tools/fixtures/%s.sh start %s")
      :format(kind, err, kind, kind, kind, dir), 3)
  end
  local ok, out = run(shquote(script(kind)) .. " status " .. shquote(dir))
  if not ok then
    error(("the shared %s fixture in %s is not answering:\n%s"):format(kind, dir, out), 3)
  end
  return info
end

function M.postgres()
  return shared("postgres")
end

function M.redis()
  return shared("redis")
end

-- Private servers ------------------------------------------------------------

local Server = {}
Server.__index = Server

function Server:__tostring()
  return ("%s %s:%s (private, %s%s)"):format(self.kind, self.host, self.port, self.dir,
    self.stopped and ", stopped" or "")
end

local function refresh(self)
  local info = load_info(self.dir .. "/info.lua")
  if info then
    for k, v in pairs(info) do self[k] = v end
  end
end

local function command(self, verb)
  if self.stopped then
    error(("%s: %s after stop()"):format(tostring(self), verb), 3)
  end
  local ok, out = run(shquote(self.script) .. " " .. verb .. " " .. shquote(self.dir))
  if not ok then
    error(("%s: %s failed:\n%s"):format(tostring(self), verb, out), 3)
  end
  return out
end

-- SIGKILL; the port and the state stay, so restart() brings it back.
function Server:kill()
  if self.kind ~= "redis" then
    error(self.kind .. ": kill() is only for redis servers", 2)
  end
  command(self, "kill")
end

-- Stops it (if running) and starts it again on the same port.
function Server:restart()
  command(self, "restart")
  refresh(self)
end

-- true when it is running and answering.
function Server:running()
  if self.stopped then return false end
  return (run(shquote(self.script) .. " status " .. shquote(self.dir)))
end

-- Stops it and removes its files; a second call does nothing.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local ok, out = run(shquote(self.script) .. " stop " .. shquote(self.dir))
  run("rm -rf " .. shquote(self.dir))
  -- the watcher sees end of file, finds nothing left to stop, and exits
  if self._watcher then
    self._watcher:close()
    self._watcher = nil
  end
  if not ok then
    error(("%s: stop failed:\n%s"):format(tostring(self), out), 2)
  end
end

Server.__close = Server.stop

local function start_private(kind)
  local ok, out = run('mktemp -d "${TMPDIR:-/tmp}/pyasync-' .. kind .. '-private.XXXXXX"')
  if not ok then error("servers: mktemp failed: " .. out, 3) end
  local dir = trim(out)
  local scr = script(kind)
  ok, out = run(shquote(scr) .. " start " .. shquote(dir))
  if not ok then
    run(shquote(scr) .. " stop " .. shquote(dir) .. "; rm -rf " .. shquote(dir))
    error(("could not start a private %s server:\n%s"):format(kind, out), 3)
  end
  local info, err = load_info(dir .. "/info.lua")
  if not info then
    run(shquote(scr) .. " stop " .. shquote(dir) .. "; rm -rf " .. shquote(dir))
    error(("private %s server: %s"):format(kind, err), 3)
  end
  -- The watcher's stdin is the read end of this pipe; only this process
  -- holds the write end (glibc opens it close-on-exec), so it reads end of
  -- file when this process closes the handle or dies, and stops the server.
  local watcher = io.popen("exec setsid -f " .. shquote(fixtures_dir() .. "/watch.sh") .. " "
    .. shquote(scr) .. " " .. shquote(dir) .. " --purge >/dev/null 2>&1", "w")
  if not watcher then
    run(shquote(scr) .. " stop " .. shquote(dir) .. "; rm -rf " .. shquote(dir))
    error(("private %s server: could not start its watcher"):format(kind), 3)
  end
  local self = setmetatable({kind = kind, script = scr, _watcher = watcher}, Server)
  for k, v in pairs(info) do self[k] = v end
  self.dir = dir
  return self
end

function M.start_redis()
  return start_private("redis")
end

function M.start_postgres()
  return start_private("postgres")
end

return M
