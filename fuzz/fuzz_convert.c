/*
** fuzz_convert.c - libFuzzer target for the value conversions (API.md
** section 2): the input decodes into a Lua value tree (nested, shared and
** cyclic tables, every kind of key, invalid UTF-8, extreme numbers, None,
** bytes, big ints, functions, deep nesting), which goes to Python and back.
** The Lua driver below predicts from the tree alone whether conversion must
** succeed and what py.totable must give back, and checks every error is a
** clean one (a PyError or a message).
*/
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "harness.h"

#define MAX_NODES 3000
#define MAX_TABLES 64
#define MAX_REFS 8

static const char DRIVER[] =
"local py = py\n"
"local F = {}\n"
"_G.F = F\n"
"local ident = py.eval('lambda x: x')\n"
"local decode = py.eval('lambda b: b.decode(\"utf-8\")')\n"
"local proxykind = setmetatable({}, {__mode = 'k'})\n"
"F.none = function() local n = py.None; return n end\n"
"F.bytes = function(s) local b = py.bytes(s); proxykind[b] = {'bytes', s}; return b end\n"
"F.bigint = function(n, neg)\n"
"  local b = py.eval(('%s(2**64 + %d)'):format(neg and '-' or '', n))\n"
"  proxykind[b] = {'bigint'}; return b\n"
"end\n"
"F.fn = function() return 1 end\n"
"F.surrogate = py.eval([['a\\udc80b\\ud800']])\n"
"local fail, clean = fz_fail, fz_clean\n"
"local utf8cache, ncached = {}, 0\n"
"local function valid_utf8(s)\n"
"  local r = utf8cache[s]\n"
"  if r == nil then\n"
"    r = pcall(decode, py.bytes(s))\n"
"    if ncached > 4096 then utf8cache, ncached = {}, 0 end\n"  /* bounded */
"    utf8cache[s], ncached = r, ncached + 1\n"
"  end\n"
"  return r\n"
"end\n"
"local function isnone(v) return rawequal(v, py.None) or (py.type(v) == 'NoneType') end\n"
/* What Python makes of a key, for collisions: keys Python finds equal. */
"local function pykey(k)\n"
"  local t = type(k)\n"
"  if t == 'boolean' then return 'n:' .. (k and 1 or 0) end\n"
"  if t == 'number' then\n"
"    if math.type(k) == 'integer' then return 'n:' .. k end\n"
"    return 'f:' .. string.format('%a', k)\n"
"  end\n"
"  if t == 'string' then return (valid_utf8(k) and 's:' or 'b:') .. k end\n"
"  if t == 'function' then return k end\n"
"  local pk = proxykind[k]\n"
"  if pk and pk[1] == 'bytes' then return 'b:' .. pk[2] end\n"
"  if pk and pk[1] == 'bigint' then return 'n:' .. tostring(k) end\n"
"  if isnone(k) then return 'None' end\n"
"  return k\n"
"end\n"
"local function is_sequence(t)\n"
"  local count, max = 0, 0\n"
"  for k in next, t do\n"
"    if math.type(k) ~= 'integer' or k < 1 then return false end\n"
"    if k > max then max = k end\n"
"    count = count + 1\n"
"  end\n"
"  return count == max, count\n"
"end\n"
/* The model of convert.c's table_topy, and of py.totable on its result:
** returns ok, expected (the Lua value py.totable gives back). */
"local model\n"
"local function back_atom(v)\n"
"  local t = type(v)\n"
"  if t == 'userdata' then\n"
"    local pk = proxykind[v]\n"
"    if pk and pk[1] == 'bytes' then return true, pk[2] end\n"
"    if isnone(v) then return true, nil end\n"
"    return true, v\n"
"  end\n"
"  return true, v\n"
"end\n"
"local MAX_DEPTH = 200\n"
/* Returns ok, expected, height: the depth of the deepest node py.totable
** will visit below this one (it copies shared tables again each time). */
"local heights = setmetatable({}, {__mode = 'k'})\n"
"function model(v, seen, depth)\n"
"  if type(v) ~= 'table' then local ok, b = back_atom(v); return ok, b, 0 end\n"
"  if depth >= MAX_DEPTH then return false end\n"
"  local s = seen[v]\n"
"  if s == true then return false end\n"
"  if s ~= nil then return true, s, heights[s] end\n"
"  seen[v] = true\n"
"  local out, h = {}, 0\n"
"  local seq, n = is_sequence(v)\n"
"  if seq then\n"
"    for i = 1, n do\n"
"      local ok, x, hx = model(v[i], seen, depth + 1)\n"
"      if not ok then return false end\n"
"      out[i] = x\n"
"      if hx + 1 > h then h = hx + 1 end\n"
"    end\n"
"  else\n"
"    local keys = {}\n"
"    for k, x in next, v do\n"
"      if type(k) == 'table' then return false end\n"  /* unhashable */
"      local pk = pykey(k)\n"
"      if keys[pk] then return false end\n"
"      keys[pk] = true\n"
"      local ok, y, hy = model(x, seen, depth + 1)\n"
"      if not ok then return false end\n"
"      local _, kb = back_atom(k)\n"
"      if kb ~= nil then\n"  /* a None key: py.totable skips the entry */
"        out[kb] = y\n"
"        if hy + 1 > h then h = hy + 1 end\n"
"      end\n"
"    end\n"
"  end\n"
"  seen[v] = out\n"
"  heights[out] = h\n"
"  return true, out, h\n"
"end\n"
"local function same(a, b, path, budget)\n"
"  budget[1] = budget[1] - 1\n"
"  if budget[1] < 0 then return end\n"
"  local ta, tb = type(a), type(b)\n"
"  if ta == 'userdata' and tb == 'userdata' then\n"
"    if not (a == b) then fail('%s: Python values differ', path) end\n"
"    return\n"
"  end\n"
"  if ta ~= tb then fail('%s: %s came back as %s', path, ta, tb) end\n"
"  if ta == 'number' then\n"
"    if math.type(a) ~= math.type(b) then fail('%s: %s came back as %s', path, math.type(a), math.type(b)) end\n"
"    if a ~= a and b ~= b then return end\n"
"    if a ~= b or (a == 0 and 1/a ~= 1/b) then fail('%s: %s came back as %s', path, a, b) end\n"
"    return\n"
"  end\n"
"  if ta ~= 'table' then\n"
"    if not rawequal(a, b) then fail('%s: %q came back as %q', path, tostring(a), tostring(b)) end\n"
"    return\n"
"  end\n"
"  for k, x in next, a do\n"
"    local y = rawget(b, k)\n"
"    if type(k) == 'userdata' then\n"  /* a big int key comes back as a new proxy */
"      for kk, yy in next, b do\n"
"        if type(kk) == 'userdata' and kk == k then y = yy end\n"
"      end\n"
"    end\n"
"    if y == nil then fail('%s: key %s missing', path, tostring(k)) end\n"
"    same(x, y, path .. '.' .. tostring(k), budget)\n"
"  end\n"
"  local na, nb = 0, 0\n"
"  for _ in next, a do na = na + 1 end\n"
"  for _ in next, b do nb = nb + 1 end\n"
"  if na ~= nb then fail('%s: %d keys came back as %d', path, na, nb) end\n"
"end\n"
"function F.check(v, mode)\n"
"  local must, expected, height = model(v, {}, 0)\n"
"  local ok, r = pcall(py.builtins.repr, v)\n"
"  if not ok then clean(r, 'repr') end\n"
"  if ok ~= must then\n"
"    fail('conversion %s, the model says it must %s: %s', ok and 'succeeded' or 'failed',\n"
"         must and 'succeed' or 'fail', tostring(r))\n"
"  end\n"
"  if ok and type(r) ~= 'string' then fail('repr gave a %s', type(r)) end\n"
"  local ok2, o = pcall(ident, v)\n"
"  if ok2 ~= ok then fail('identity call disagrees with repr: %s', tostring(o)) end\n"
"  if not ok2 then clean(o, 'identity') end\n"
"  if ok2 then\n"
"    local ok3, t = pcall(py.totable, o)\n"
"    if height > MAX_DEPTH then\n"  /* copies of shared tables nest deeper */
"      if ok3 then fail('py.totable copied %d levels', height) end\n"
"      clean(t, 'py.totable')\n"
"    else\n"
"      if not ok3 then fail('py.totable failed: %s', tostring(t)) end\n"
"      same(expected, t, 'v', {20000})\n"
"    end\n"
"  end\n"
/* the forcing constructors: only clean outcomes are required */
"  local ok4, e = pcall(py.list, v)\n"
"  if not ok4 then clean(e, 'py.list') end\n"
"  ok4, e = pcall(py.dict, v)\n"
"  if not ok4 then clean(e, 'py.dict') end\n"
"  ok4, e = pcall(py.tuple, v, v)\n"
"  if not ok4 then clean(e, 'py.tuple') end\n"
"  if mode % 4 == 0 then\n"
"    ok4, e = pcall(py.kw, v)\n"
"    if ok4 and type(v) == 'table' then\n"
"      ok4, e = pcall(py.builtins.dict, v)\n"  /* kw table as keyword arguments */
"    end\n"
"    if not ok4 then clean(e, 'py.kw') end\n"
"  end\n"
"  if type(v) == 'table' then setmetatable(v, nil) end\n"
"end\n";

typedef struct {
  fz_Reader r;
  int nodes, ntables, nrefs;
  int made;  /* stack index of the list of tables made so far */
} Gen;

static const char *const STRINGS[] = {
  "", "a", "\0", "a\0b", "\xc3\xa9", "\xf0\x9f\x98\x80", "\xed\xa0\x80",
  "\xed\xbf\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xf4\x90\x80\x80",
  "\xf8\x88\x80\x80\x80", "\xff", "\xfe\xff", "\x80", "\xc3", "\xe2\x82",
  "\xef\xbb\xbf", "1", "1.0", "nan", "__index", "\xf0\x9f\x98",
};

static const lua_Integer INTS[] = {
  0, 1, -1, 2, LUA_MAXINTEGER, LUA_MININTEGER, (lua_Integer)1 << 53,
  ((lua_Integer)1 << 53) + 1, (lua_Integer)1 << 31, -((lua_Integer)1 << 31),
  (lua_Integer)1 << 32, 255, 256, 65535, 65536, 200, 201,
};

static void call_F(lua_State *L, const char *name, int nargs) {
  lua_getglobal(L, "F");
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, -1 - nargs);
  lua_call(L, nargs, 1);
}

static double special_float(uint8_t c) {
  static const double f[] = {0.0, -0.0, 0.5, -1.5, 1e308, -1e308, 5e-324,
                             9223372036854775808.0, 18446744073709551616.0,
                             -9223372036854775808.0, 1.0, 3.0, 1e16, 0.1};
  switch (c % 17) {
    case 14: return HUGE_VAL;
    case 15: return -HUGE_VAL;
    case 16: return NAN;
    default: return f[c % 17];
  }
}

static void gen_value(lua_State *L, Gen *g, int depth);

/* A new table, remembered so later nodes may refer back to it (sharing, or
** a cycle while it is still being filled). */
static void new_table(lua_State *L, Gen *g, int narr) {
  lua_createtable(L, narr, 0);
  if (g->ntables < MAX_TABLES) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, g->made, ++g->ntables);
  }
}

static void gen_table(lua_State *L, Gen *g, int depth, int seq) {
  int n = fz_u8(&g->r) % (seq ? 12 : 8);
  new_table(L, g, seq ? n : 0);
  for (int i = 1; i <= n && fz_more(&g->r); i++) {
    if (seq) {
      gen_value(L, g, depth + 1);
      lua_rawseti(L, -2, i);  /* nil leaves a hole: then it is no list */
      continue;
    }
    gen_value(L, g, depth + 1);  /* key */
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER &&
                             isnan(lua_tonumber(L, -1)))) {
      lua_pop(L, 1);  /* no Lua table can hold that key */
      continue;
    }
    gen_value(L, g, depth + 1);
    lua_rawset(L, -3);
  }
}

/* A chain of n nested tables around one value: the depth limit's edge. */
static void gen_chain(lua_State *L, Gen *g, int depth) {
  int n = 190 + fz_u8(&g->r) % 20;
  int keyed = fz_u8(&g->r) & 1;
  gen_value(L, g, depth + 1);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    if (keyed) lua_setfield(L, -2, "k");
    else lua_rawseti(L, -2, 1);
  }
}

static void gen_value(lua_State *L, Gen *g, int depth) {
  luaL_checkstack(L, 8, "fuzz value too deep");
  if (++g->nodes > MAX_NODES || !fz_more(&g->r) || depth > 24) {
    lua_pushinteger(L, g->nodes);
    return;
  }
  uint8_t op = fz_u8(&g->r);
  size_t len;
  const char *s;
  switch (op % 20) {
    case 0: lua_pushnil(L); break;
    case 1: lua_pushboolean(L, op & 0x20); break;
    case 2: lua_pushinteger(L, (int8_t)fz_u8(&g->r)); break;
    case 3: lua_pushinteger(L, (lua_Integer)fz_u64(&g->r)); break;
    case 4: lua_pushinteger(L, INTS[fz_u8(&g->r) % (sizeof INTS / sizeof INTS[0])]); break;
    case 5: {
      uint64_t bits = fz_u64(&g->r);
      double d;
      memcpy(&d, &bits, sizeof d);
      lua_pushnumber(L, d);
      break;
    }
    case 6: lua_pushnumber(L, special_float(fz_u8(&g->r))); break;
    case 7: s = fz_bytes(&g->r, 64, &len); lua_pushlstring(L, s, len); break;
    case 8: {
      uint8_t c = fz_u8(&g->r) % (sizeof STRINGS / sizeof STRINGS[0]);
      lua_pushlstring(L, STRINGS[c], c == 2 ? 1 : c == 3 ? 3 : strlen(STRINGS[c]));
      break;
    }
    case 9: call_F(L, "none", 0); break;
    case 10: s = fz_bytes(&g->r, 32, &len); lua_pushlstring(L, s, len); call_F(L, "bytes", 1); break;
    case 11:
      lua_pushinteger(L, fz_u8(&g->r));
      lua_pushboolean(L, op & 0x20);
      call_F(L, "bigint", 2);
      break;
    case 12: lua_getglobal(L, "F"); lua_getfield(L, -1, "fn"); lua_remove(L, -2); break;
    case 13: lua_getglobal(L, "F"); lua_getfield(L, -1, "surrogate"); lua_remove(L, -2); break;
    case 14: case 15: gen_table(L, g, depth, 0); break;
    case 16: case 17: gen_table(L, g, depth, 1); break;
    case 18:  /* an earlier table again: shared, or cyclic if still open */
      if (g->ntables && g->nrefs < MAX_REFS) {
        g->nrefs++;
        lua_rawgeti(L, g->made, 1 + fz_u8(&g->r) % g->ntables);
      } else lua_pushboolean(L, 0);
      break;
    default: gen_chain(L, g, depth); break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int loaded;
  lua_State *L = fz_state();
  if (!loaded++) fz_load(L, "=fuzz_convert", DRIVER);
  Gen g = {{data, size}, 0, 0, 0, 0};
  uint8_t mode = fz_u8(&g.r);
  lua_getglobal(L, "F");
  lua_getfield(L, -1, "check");
  lua_remove(L, -2);
  lua_newtable(L);
  g.made = lua_gettop(L);
  gen_value(L, &g, 0);
  lua_remove(L, g.made);
  lua_pushinteger(L, mode);
  fz_call(L, 2);
  fz_step(L);
  return 0;
}
