/*
** minbridge.c - the floor for a synchronous Lua -> Python call: a Lua C
** module doing only PyGILState_Ensure + PyObject_Vectorcall +
** PyGILState_Release on numbers, plus what the benchmarks need from C: a
** monotonic clock (the clock of time.perf_counter), a sleep, malloc's heap.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <lua.h>
#include <lauxlib.h>
#include <errno.h>
#include <malloc.h>
#include <time.h>

#define MB_FUNC "minbridge.Func"

typedef struct { PyObject *f; } MBFunc;

/* Uses an interpreter that is already running (pyasync's), else starts one
** and releases the GIL, so that every call takes it with PyGILState_Ensure. */
static int mb_init(lua_State *L) {
  if (Py_IsInitialized()) { lua_pushboolean(L, 0); return 1; }
  Py_InitializeEx(0);
  PyEval_SaveThread();
  lua_pushboolean(L, 1);
  return 1;
}

/* func(module, name) -> callable userdata for module.name */
static int mb_func(lua_State *L) {
  const char *mod = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
  MBFunc *m = lua_newuserdatauv(L, sizeof *m, 0);
  m->f = NULL;
  luaL_setmetatable(L, MB_FUNC);
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *module = PyImport_ImportModule(mod);
  if (module) {
    m->f = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
  }
  if (!m->f) PyErr_Clear();
  PyGILState_Release(g);
  if (!m->f) return luaL_error(L, "minbridge: no %s.%s", mod, name);
  return 1;
}

static PyObject *num_topy(lua_State *L, int i) {
  if (lua_isinteger(L, i)) return PyLong_FromLongLong(lua_tointeger(L, i));
  return PyFloat_FromDouble(lua_tonumber(L, i));
}

/* f(a, b): numbers in, a number out. */
static int mb_call(lua_State *L) {
  MBFunc *m = luaL_checkudata(L, 1, MB_FUNC);
  int n = lua_gettop(L) - 1;
  if (n > 4) return luaL_error(L, "minbridge: at most 4 arguments");
  for (int i = 2; i <= n + 1; i++) luaL_checknumber(L, i);
  PyObject *args[5] = {NULL};
  int isint = 0, ok = 0;
  lua_Integer iv = 0;
  double dv = 0;
  PyGILState_STATE g = PyGILState_Ensure();
  for (int i = 0; i < n; i++) args[i + 1] = num_topy(L, i + 2);
  PyObject *r = PyObject_Vectorcall(m->f, args + 1,
                                    (size_t)n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
  for (int i = 1; i <= n; i++) Py_XDECREF(args[i]);
  if (r && PyLong_Check(r)) { isint = 1; iv = PyLong_AsLongLong(r); ok = !PyErr_Occurred(); }
  else if (r) { dv = PyFloat_AsDouble(r); ok = !PyErr_Occurred(); }
  Py_XDECREF(r);
  if (!ok) PyErr_Clear();
  PyGILState_Release(g);
  if (!ok) return luaL_error(L, "minbridge: call failed");
  if (isint) lua_pushinteger(L, iv);
  else lua_pushnumber(L, dv);
  return 1;
}

static int mb_gc(lua_State *L) {
  MBFunc *m = luaL_checkudata(L, 1, MB_FUNC);
  if (m->f && Py_IsInitialized()) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_CLEAR(m->f);
    PyGILState_Release(g);
  }
  return 0;
}

/* now() -> monotonic nanoseconds (integer). */
static int mb_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
  return 1;
}

/* sleep(ns): nanosleep, no GIL held (the benchmarks' pauses between
** wake-ups: Lua waits the way a sleeping Python thread does). */
static int mb_sleep(lua_State *L) {
  lua_Integer ns = luaL_checkinteger(L, 1);
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  return 0;
}

/* heap() -> bytes in use in glibc's malloc (mallinfo2: uordblks, all arenas,
** chunk headers included; not the blocks malloc mmaps on its own, which it
** does from 128 KiB up, nor pymalloc's arenas, which Python mmaps). */
static int mb_heap(lua_State *L) {
  struct mallinfo2 mi = mallinfo2();
  lua_pushinteger(L, (lua_Integer)mi.uordblks);
  lua_pushinteger(L, (lua_Integer)mi.hblkhd);
  return 2;
}

/* noop(a, b): the cost of a Lua -> C call. */
static int mb_noop(lua_State *L) {
  lua_pushinteger(L, 0);
  return 1;
}

static const luaL_Reg mb_funcs[] = {
  {"init", mb_init}, {"func", mb_func}, {"now", mb_now}, {"noop", mb_noop},
  {"sleep", mb_sleep}, {"heap", mb_heap},
  {NULL, NULL}};

int luaopen_minbridge(lua_State *L) {
  luaL_newmetatable(L, MB_FUNC);
  lua_pushcfunction(L, mb_call);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, mb_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, mb_funcs);
  return 1;
}
