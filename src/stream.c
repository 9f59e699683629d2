/*
** stream.c - async generators as Lua iterators and the Queue bridge
** (API.md section 6).
*/
#include "pyasync_int.h"

int luaopen_pyasync_stream(lua_State *L) {
  (void)L;
  return 0;
}
