/*
** luv.c - sharing one libuv loop with luv (Debian's lua-luv) in the same
** Lua state, so luv timers and sockets interleave with Python awaits.  If
** luv is already loaded, pyasync adopts luv's loop; otherwise pyasync
** preloads "luv" so that luv adopts pyasync's loop when it is required.
*/
#define _GNU_SOURCE
#include <dlfcn.h>

#include "pyasync_int.h"

typedef uv_loop_t *(*luv_loop_fn)(lua_State *L);
typedef void (*luv_set_loop_fn)(lua_State *L, uv_loop_t *loop);

/* dlopen()s the luv module that require "luv" would load, or NULL. */
static void *open_luv(lua_State *L, int noload) {
  int top = lua_gettop(L);
  void *h = NULL;
  if (lua_getglobal(L, "package") == LUA_TTABLE &&
      lua_getfield(L, -1, "searchpath") == LUA_TFUNCTION) {
    lua_pushliteral(L, "luv");
    lua_getfield(L, -3, "cpath");
    if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_isstring(L, -1))
      h = dlopen(lua_tostring(L, -1), RTLD_NOW | RTLD_LOCAL | (noload ? RTLD_NOLOAD : 0));
  }
  lua_settop(L, top);
  return h;
}

/* package.preload.luv: luv, told to use pyasync's loop before it opens. */
static int load_luv(lua_State *L) {
  void *h = open_luv(L, 0);
  if (!h) return luaL_error(L, "module 'luv' not found");
  luv_set_loop_fn set_loop = (luv_set_loop_fn)dlsym(h, "luv_set_loop");
  lua_CFunction open = (lua_CFunction)dlsym(h, "luaopen_luv");
  if (!set_loop || !open) return luaL_error(L, "luv lacks luv_set_loop/luaopen_luv");
  /* luv runs its callbacks on the state it is given: the main thread, as
  ** luaopen_luv itself picks, never the coroutine that required it */
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *mainL = lua_tothread(L, -1);
  lua_pop(L, 1);
  set_loop(mainL, pya__uvloop());
  return open(L);
}

void pya__luv_setup(lua_State *L) {
  int top = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_getfield(L, -1, "luv") != LUA_TNIL;
  lua_settop(L, top);
  if (loaded) {
    void *h = open_luv(L, 1);
    luv_loop_fn get = h ? (luv_loop_fn)dlsym(h, "luv_loop") : NULL;
    uv_loop_t *loop = get ? get(L) : NULL;
    if (loop) pya__uv_set_loop(loop);
  } else {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, "luv") == LUA_TNIL) {
      lua_pushcfunction(L, load_luv);
      lua_setfield(L, -3, "luv");
    }
  }
  lua_settop(L, top);
}
