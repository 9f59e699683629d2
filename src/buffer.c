/* buffer.c - placeholder until zero-copy views land. */
#include "pyasync_int.h"
PyObject *pya__view_topy(lua_State *L, int idx) { (void)L; (void)idx; PyErr_SetString(PyExc_TypeError, "no views"); return NULL; }
int luaopen_pyasync_buffer(lua_State *L) { (void)L; return 0; }
