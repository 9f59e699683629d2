/* main.c - the pyasync host binary (minimal; see lua.c for the model). */
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "pyasync.h"

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  pyasync_preload(L);
  if (argc < 2) { fprintf(stderr, "usage: pyasync script\n"); return 1; }
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i - 1); }
  lua_setglobal(L, "arg");
  int st = luaL_loadfile(L, argv[1]);
  if (st == LUA_OK) {
    for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    st = pyasync_runtask(L, argc - 2, 0);
  }
  if (st != LUA_OK) fprintf(stderr, "pyasync: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return st == LUA_OK ? 0 : 1;
}
