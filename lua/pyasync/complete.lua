-- pyasync/complete.lua - Tab completion for the host binary's REPL (API.md
-- section 10): the candidates for the name chain before the cursor
-- (`stri`, `string.for`, `s:up`, `np.ara`), from globals, Lua tables and
-- their __index tables, and for Python proxies from dir().  It only looks
-- names up along the chain, never calls anything else, and never raises.

local M = {}

M.MAX = 1000  -- candidates at most

local KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                  "function", "goto", "if", "in", "local", "nil", "not", "or",
                  "repeat", "return", "then", "true", "until", "while"}
local IS_KEYWORD = {}
for _, k in ipairs(KEYWORDS) do IS_KEYWORD[k] = true end

local function is_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not IS_KEYWORD[s]
end

local function is_proxy(v)
  local mt = type(v) == "userdata" and debug.getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == "pyasync.Object"
end

local function index_table(v)
  local mt = debug.getmetatable(v)
  local idx = type(mt) == "table" and rawget(mt, "__index")
  return type(idx) == "table" and idx or nil
end

-- v[key] as Lua would see it, but only through raw fields and __index
-- tables for Lua values; a proxy or other userdata is indexed (getattr).
local function lookup(v, key)
  if is_proxy(v) or type(v) == "userdata" then
    local ok, r = pcall(function() return v[key] end)
    return ok and r or nil
  end
  for _ = 1, 20 do  -- a bounded __index chain
    if type(v) == "table" then
      local r = rawget(v, key)
      if r ~= nil then return r end
    elseif type(v) ~= "string" then
      return nil
    end
    v = index_table(v)
    if v == nil then return nil end
  end
end

local function is_callable(v)
  if type(v) == "function" or is_proxy(v) then return true end
  local mt = debug.getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

-- Adds the string keys of t and of its __index tables.
local function table_names(t, add, methods)
  for _ = 1, 20 do
    if type(t) == "table" then
      for k, v in next, t do
        if not methods or is_callable(v) then add(k) end
      end
    end
    t = index_table(t)
    if t == nil then return end
  end
end

-- dir(obj), and the string keys of a dict (obj.key reads the item first).
local function python_names(obj, add)
  local py = package.loaded.pyasync
  if type(py) ~= "table" then return end
  pcall(function()
    for name in py.iter(py.builtins.dir(obj)) do add(name) end
  end)
  pcall(function()
    if py.isinstance(obj, py.builtins.dict) then
      local n = 0
      for key in py.iter(obj) do
        n = n + 1
        if n > M.MAX then break end
        add(key)
      end
    end
  end)
end

local function names_of(v, add, methods)
  if is_proxy(v) then
    python_names(v, add)
  elseif type(v) == "table" or type(v) == "string" then
    table_names(v, add, methods)
  elseif type(v) == "userdata" then
    local mt = debug.getmetatable(v)
    if type(mt) == "table" then
      table_names(rawget(mt, "__index"), add, methods)
      for k in next, mt do
        if type(k) == "string" and not k:match("^__") then add(k) end
      end
    end
  end
end

-- Whether the end of line is inside a string or a comment (no completion
-- there); long brackets are treated as plain text.
local function in_literal(line)
  local i, quote = 1, nil
  while i <= #line do
    local c = line:sub(i, i)
    if quote then
      if c == "\\" then i = i + 1 elseif c == quote then quote = nil end
    elseif c == '"' or c == "'" then
      quote = c
    elseif line:sub(i, i + 1) == "--" then
      return true
    end
    i = i + 1
  end
  return quote ~= nil
end

-- The candidates: every full chain (`string.format`) that the word before
-- the cursor can become.  line: the text before the cursor; word: the part
-- readline replaces (default: the name chain ending line).
local function candidates(line, word)
  word = word or line:match("[%w_.:]*$")
  if in_literal(line) or not word:match("^[%a_][%w_]*[%w_.:]*$") then return {} end
  local head, sep, prefix = word:match("^(.-)([.:]?)([%w_]*)$")
  if sep == "" then head = nil end
  if head and head:find(":", 1, true) then return {} end  -- only a last a:b
  local v = debug.getregistry()[2]  -- LUA_RIDX_GLOBALS: what REPL lines see
  if head then
    for part in (head .. "."):gmatch("(.-)%.") do
      if not is_name(part) then return {} end
      v = lookup(v, part)
      if v == nil then return {} end
    end
  end
  local seen, out = {}, {}
  local hide = prefix:sub(1, 1) ~= "_" and is_proxy(v)  -- Python's _private
  local function add(name)
    if #out >= M.MAX or seen[name] or not is_name(name) then return end
    if name:sub(1, #prefix) ~= prefix or (hide and name:sub(1, 1) == "_") then return end
    seen[name] = true
    out[#out + 1] = (head and head .. sep or "") .. name
  end
  names_of(v, add, sep == ":")
  if not head then
    for _, k in ipairs(KEYWORDS) do
      if k:sub(1, #prefix) == prefix and #out < M.MAX then out[#out + 1] = k end
    end
  end
  table.sort(out)
  return out
end

--- complete(line [, word]) -> list of candidates (never raises).
function M.complete(line, word)
  local ok, r = pcall(candidates, tostring(line or ""), word and tostring(word))
  return ok and r or {}
end

return M
