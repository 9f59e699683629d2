-- bench/lib.lua - the harness of the benchmark suite: a monotonic clock,
-- repeated and interleaved measurement (median, min, max), RSS from /proc,
-- and records written as JSON lines for bench/report.py.
local mb = require "minbridge"

local M = {now = mb.now, reps = 7}

-- Runs each fn once unrecorded, then reps rounds in which every fn runs once,
-- in turn, so that drift on the machine hits pyasync and its reference alike.
-- Each fn returns the figure of one run (already per operation).
function M.rounds(fns, reps)
  reps = reps or M.reps
  local out = {}
  for k, fn in ipairs(fns) do collectgarbage(); fn(); out[k] = {} end
  for _ = 1, reps do
    for k, fn in ipairs(fns) do
      collectgarbage()
      out[k][#out[k] + 1] = fn()
    end
  end
  return table.unpack(out, 1, #fns)
end

-- Wall time of f(n) per iteration, in the unit given by scale (1e9: ns).
function M.per_op(n, scale, f)
  return function()
    local t0 = mb.now()
    f(n)
    return (mb.now() - t0) / n * scale / 1e9
  end
end

function M.median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Resident set size of this process in bytes.
function M.rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * 4096
end

-- VmHWM (peak RSS) in bytes; reset_peak() starts a new peak (Linux >= 4.0).
function M.peak_rss()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) * 1024 end
  end
end

function M.reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if f then f:write("5"); f:close() end
end

-- --- JSON lines -----------------------------------------------------------

local function enc(v)
  local t = type(v)
  if t == "nil" then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return math.type(v) == "integer" and tostring(v) or string.format("%.6g", v)
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  end
  if #v > 0 or next(v) == nil then
    local parts = {}
    for i = 1, #v do parts[i] = enc(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys, parts = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do parts[i] = enc(tostring(k)) .. ":" .. enc(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
M.json = enc

local out
function M.open(path)
  out = path and assert(io.open(path, "a")) or nil
end

-- rec: {id, section, what, unit, samples = {...}, ref = "name",
-- ref_samples = {...}, target = ratio or nil, note = ...}
local function load1()
  local f = io.open("/proc/loadavg")
  if not f then return nil end
  local l = f:read("n")
  f:close()
  return l
end

function M.record(rec)
  rec.process = M.process
  rec.load = load1()
  if M.no_targets then rec.target = nil end
  local line = string.format("  %-44s %10.3g %s", rec.what, M.median(rec.samples), rec.unit)
  if rec.ref_samples then
    line = line .. string.format("   ref %.3g (%s)", M.median(rec.ref_samples), rec.ref)
  end
  io.stderr:write(line, "\n")
  if out then out:write(enc(rec), "\n"); out:flush() end
end

-- A record of plain values (memory figures): values = {label = number}.
function M.values(rec)
  rec.process = M.process
  io.stderr:write(string.format("  %-44s %s\n", rec.what, enc(rec.values)))
  if out then out:write(enc(rec), "\n"); out:flush() end
end

return M
