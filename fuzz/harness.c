/*
** harness.c - the Lua state the fuzz targets run in, their driver chunks,
** and the input reader.  Python runs with its system allocator so that
** AddressSanitizer sees every Python object pyasync touches.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "harness.h"
#include "pyasync.h"

static lua_State *state;

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

lua_State *fz_state(void) {
  if (state) return state;
  setenv("PYTHONMALLOC", "malloc", 1);
  state = luaL_newstate();
  luaL_openlibs(state);
  pyasync_preload(state);
  /* what every target's oracle uses: a failed check, and an error that
  ** must be a message or a PyError, never anything else */
  fz_load(state, "=fuzz",
    "py = require 'pyasync'\n"
    "function fz_fail(fmt, ...) error('FUZZ-ASSERT: ' .. fmt:format(...), 0) end\n"
    "function fz_clean(e, what)\n"
    "  if type(e) ~= 'string' and not py.iserror(e) then\n"
    "    fz_fail('%s raised a %s, not a PyError or a message', what, type(e))\n"
    "  end\n"
    "end\n");
  return state;
}

void fz_load(lua_State *L, const char *name, const char *src) {
  if (luaL_loadbuffer(L, src, strlen(src), name) == LUA_OK) fz_call(L, 0);
  else {
    fprintf(stderr, "fuzz: cannot load %s: %s\n", name, lua_tostring(L, -1));
    abort();
  }
}

void fz_call(lua_State *L, int nargs) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
    fprintf(stderr, "fuzz: oracle failed: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, base - 1);
}

void fz_step(lua_State *L) {
  static unsigned n;
  if (++n % 64 == 0) lua_gc(L, LUA_GCCOLLECT);
}

int fz_more(const fz_Reader *r) { return r->n > 0; }

uint8_t fz_u8(fz_Reader *r) {
  if (!r->n) return 0;
  r->n--;
  return *r->p++;
}

uint16_t fz_u16(fz_Reader *r) {
  uint16_t x = fz_u8(r);
  return (uint16_t)(x | fz_u8(r) << 8);
}

uint64_t fz_u64(fz_Reader *r) {
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x |= (uint64_t)fz_u8(r) << (8 * i);
  return x;
}

const char *fz_bytes(fz_Reader *r, size_t max, size_t *len) {
  size_t n = fz_u8(r);
  if (n > max) n = max;
  if (n > r->n) n = r->n;
  const char *s = (const char *)r->p;
  r->p += n;
  r->n -= n;
  *len = n;
  return s;
}
