/*
** lib.c - the module tables: pyasync.core (the C functions of API.md
** sections 1-4) and pyasync itself, whose Lua part (lua/pyasync/init.lua)
** is compiled in so the host binary needs no LUA_PATH.
*/
#include <string.h>

#include "pyasync_int.h"

/* --- code and modules ----------------------------------------------------- */

/* The ns argument at idx: a module or dict proxy, or NULL for __main__.
** Checked before the GIL is taken: a bad one raises. */
static PyObject *check_namespace(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return NULL;
  PyObject *o = pya__checkobj(L, idx);
  luaL_argcheck(L, PyModule_Check(o) || PyDict_Check(o), idx, "module or dict expected");
  return o;
}

/* Its globals dict (borrowed; GIL held).  Like exec(), a dict without
** __builtins__ gets them: some code (numpy's) needs them in its caller. */
static PyObject *namespace(PyObject *ns) {
  if (!ns) ns = PyImport_AddModule("__main__");
  if (ns && PyModule_Check(ns)) return PyModule_GetDict(ns);
  if (ns && !PyDict_GetItemString(ns, "__builtins__") &&
      PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0) return NULL;
  return ns;
}

static int run(lua_State *L, int mode) {
  size_t len;
  const char *src = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, strlen(src) == len, 1, "source contains a NUL byte");
  PyObject *ns = check_namespace(L, 2);
  int took = pya__gil_enter(L);
  PyObject *g = namespace(ns);
  PyObject *code = g ? Py_CompileString(src, mode == Py_eval_input ? "<eval>" : "<exec>", mode) : NULL;
  PyObject *r = code ? PyEval_EvalCode(code, g, g) : NULL;
  Py_XDECREF(code);
  int ok = r != NULL, n = 0;
  if (!ok) pya__pusherror(L);
  else if (mode == Py_eval_input) { pya__push(L, r); n = 1; }
  Py_XDECREF(r);
  pya__gil_leave(took);
  if (!ok) return lua_error(L);
  return n;
}

static int lib_exec(lua_State *L) { return run(L, Py_file_input); }
static int lib_eval(lua_State *L) { return run(L, Py_eval_input); }

static int lib_import(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int took = pya__gil_enter(L);
  PyObject *m = PyImport_ImportModule(name);
  if (m) { pya__pushobj(L, m); Py_DECREF(m); }
  else pya__pusherror(L);
  pya__gil_leave(took);
  if (!m) return lua_error(L);
  return 1;
}

/* --- explicit forms ------------------------------------------------------- */

/* Runs op under the GIL with the proxy at 1; op pushes its results and
** returns their count, or -1 with a Python exception set. */
typedef int (*objop)(lua_State *L, PyObject *o);

static int with_obj(lua_State *L, objop op) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  int n = op(L, o);
  if (n < 0) pya__pusherror(L);
  pya__gil_leave(took);
  if (n < 0) return lua_error(L);
  return n;
}

static int push_new(lua_State *L, PyObject *r) {
  if (!r) return -1;
  pya__push(L, r);
  Py_DECREF(r);
  return 1;
}

/* The ops run with the GIL held: the lib_ functions check the arguments
** first, for a failed luaL_check* would leave the GIL taken. */
static PyObject *arg_topy(lua_State *L, int idx) { return pya__topy(L, idx); }

/* Names go as converted (not as C strings, which would stop at a NUL). */
static int op_getattr(lua_State *L, PyObject *o) {
  PyObject *name = arg_topy(L, 2);
  PyObject *r = name ? PyObject_GetAttr(o, name) : NULL;
  Py_XDECREF(name);
  return push_new(L, r);
}
static int op_setattr(lua_State *L, PyObject *o) {
  PyObject *name = arg_topy(L, 2), *v = name ? arg_topy(L, 3) : NULL;
  int r = v ? PyObject_SetAttr(o, name, v) : -1;
  Py_XDECREF(name);
  Py_XDECREF(v);
  return r;
}
static int op_hasattr(lua_State *L, PyObject *o) {
  PyObject *name = arg_topy(L, 2);
  if (!name) return -1;
  lua_pushboolean(L, PyObject_HasAttr(o, name));
  Py_DECREF(name);
  return 1;
}
static int op_item(lua_State *L, PyObject *o) {
  PyObject *k = arg_topy(L, 2);
  PyObject *r = k ? PyObject_GetItem(o, k) : NULL;
  Py_XDECREF(k);
  return push_new(L, r);
}
static int op_setitem(lua_State *L, PyObject *o) {
  PyObject *k = arg_topy(L, 2), *v = k ? arg_topy(L, 3) : NULL;
  int r = v ? PyObject_SetItem(o, k, v) : -1;
  Py_XDECREF(k);
  Py_XDECREF(v);
  return r;
}
static int op_delitem(lua_State *L, PyObject *o) {
  PyObject *k = arg_topy(L, 2);
  int r = k ? PyObject_DelItem(o, k) : -1;
  Py_XDECREF(k);
  return r;
}
static int op_call(lua_State *L, PyObject *o) {
  return push_new(L, pya__call(L, o, 4));
}
static int op_type(lua_State *L, PyObject *o) {
  lua_pushstring(L, _PyType_Name(Py_TYPE(o)));
  return 1;
}

static int lib_getattr(lua_State *L) {
  luaL_checkstring(L, 2);
  return with_obj(L, op_getattr);
}
static int lib_setattr(lua_State *L) {
  luaL_checkstring(L, 2);
  lua_settop(L, 3);
  return with_obj(L, op_setattr);
}
static int lib_hasattr(lua_State *L) {
  luaL_checkstring(L, 2);
  return with_obj(L, op_hasattr);
}
static int lib_item(lua_State *L) {
  luaL_checkany(L, 2);
  return with_obj(L, op_item);
}
static int lib_setitem(lua_State *L) {
  luaL_checkany(L, 3);
  return with_obj(L, op_setitem);
}
static int lib_delitem(lua_State *L) {
  luaL_checkany(L, 2);
  return with_obj(L, op_delitem);
}

/* py.call(f, {args}, {kwargs}): the arguments unpacked onto the stack from
** index 4, kwargs copied into a py.kw table (the caller's stays as it is). */
static int lib_call(lua_State *L) {
  pya__checkobj(L, 1);
  lua_settop(L, 3);
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "n");
    lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)lua_rawlen(L, 2);
    lua_pop(L, 1);
    luaL_argcheck(L, n >= 0 && n < 1000000, 2, "bad argument count 'n'");
    luaL_checkstack(L, (int)n + 4, "too many arguments");
    for (lua_Integer i = 1; i <= n; i++) lua_rawgeti(L, 2, i);
  }
  if (!lua_isnil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_newtable(L);
    for (lua_pushnil(L); lua_next(L, 3); ) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
    luaL_setmetatable(L, PYA_KW);
  }
  return with_obj(L, op_call);
}

/* py.isinstance(x, cls): x may be a Lua value (its conversion is tested). */
static int lib_isinstance(lua_State *L) {
  luaL_checkany(L, 1);
  PyObject *cls = pya__checkobj(L, 2);
  int took = pya__gil_enter(L);
  PyObject *o = pya__topy(L, 1);
  int r = o ? PyObject_IsInstance(o, cls) : -1;
  Py_XDECREF(o);
  if (r >= 0) lua_pushboolean(L, r);
  else pya__pusherror(L);
  pya__gil_leave(took);
  if (r < 0) return lua_error(L);
  return 1;
}

/* py.type(x): the Python type name of x (of its conversion, for Lua values). */
static int lib_type(lua_State *L) {
  luaL_checkany(L, 1);
  if (pya__toobj(L, 1)) return with_obj(L, op_type);
  int took = pya__gil_enter(L);
  PyObject *o = pya__topy(L, 1);
  if (o) { lua_pushstring(L, _PyType_Name(Py_TYPE(o))); Py_DECREF(o); }
  else pya__pusherror(L);
  pya__gil_leave(took);
  if (!o) return lua_error(L);
  return 1;
}

static int lib_is(lua_State *L) {
  luaL_checkany(L, 1);
  luaL_checkany(L, 2);
  int took = pya__gil_enter(L);
  PyObject *a = pya__topy(L, 1), *b = a ? pya__topy(L, 2) : NULL;
  if (b) lua_pushboolean(L, a == b);
  else pya__pusherror(L);
  Py_XDECREF(a);
  Py_XDECREF(b);
  pya__gil_leave(took);
  if (!b) return lua_error(L);
  return 1;
}

/* --- forcing a kind ------------------------------------------------------- */

static int make(lua_State *L, PyObject *(*build)(lua_State *L)) {
  int took = pya__gil_enter(L);
  PyObject *o = build(L);
  if (o) { pya__pushobj(L, o); Py_DECREF(o); }
  else pya__pusherror(L);
  pya__gil_leave(took);
  if (!o) return lua_error(L);
  return 1;
}

static PyObject *build_bytes(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, 1, &n);
  if (s) return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
  PyObject *o = pya__topy(L, 1);  /* a proxy: bytes(obj) */
  PyObject *r = o ? PyBytes_FromObject(o) : NULL;
  Py_XDECREF(o);
  return r;
}

static PyObject *build_list(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE) {
    PyObject *o = pya__topy(L, 1);
    PyObject *r = o ? PySequence_List(o) : NULL;
    Py_XDECREF(o);
    return r;
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (lua_Integer i = 1; list && i <= n; i++) {
    lua_rawgeti(L, 1, i);
    PyObject *v = pya__topy(L, -1);
    lua_pop(L, 1);
    if (!v) { Py_CLEAR(list); break; }
    PyList_SET_ITEM(list, (Py_ssize_t)(i - 1), v);
  }
  return list;
}

static PyObject *build_dict(lua_State *L) {
  if (lua_isnoneornil(L, 1)) return PyDict_New();
  PyObject *o = pya__topy(L, 1);
  if (!o) return NULL;
  if (lua_type(L, 1) != LUA_TTABLE) {  /* a proxy: what dict(x) gives */
    PyObject *d = PyObject_CallOneArg((PyObject *)&PyDict_Type, o);
    Py_DECREF(o);
    return d;
  }
  if (PyDict_Check(o)) return o;
  PyObject *d = PyDict_New();  /* a sequence table: keys 1..n */
  for (Py_ssize_t i = 0; d && i < PyList_GET_SIZE(o); i++) {
    PyObject *k = PyLong_FromSsize_t(i + 1);
    if (!k || PyDict_SetItem(d, k, PyList_GET_ITEM(o, i)) < 0) Py_CLEAR(d);
    Py_XDECREF(k);
  }
  Py_DECREF(o);
  return d;
}

static PyObject *build_tuple(lua_State *L) {
  int n = lua_gettop(L);
  PyObject *t = PyTuple_New(n);
  for (int i = 0; t && i < n; i++) {
    PyObject *v = pya__topy(L, i + 1);
    if (!v) { Py_CLEAR(t); break; }
    PyTuple_SET_ITEM(t, i, v);
  }
  return t;
}

static int lib_bytes(lua_State *L) { luaL_checkany(L, 1); return make(L, build_bytes); }
static int lib_list(lua_State *L) { luaL_checkany(L, 1); return make(L, build_list); }
static int lib_dict(lua_State *L) { return make(L, build_dict); }
static int lib_tuple(lua_State *L) { return make(L, build_tuple); }

static int lib_kw(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, PYA_KW);
  return 1;
}

/* --- py.totable ----------------------------------------------------------- */

static int totable(lua_State *L, PyObject *o, int depth) {
  if (depth > 200) { PyErr_SetString(PyExc_ValueError, "object nested too deeply"); return -1; }
  if (!lua_checkstack(L, 4)) { PyErr_NoMemory(); return -1; }  /* GIL held */
  if (PyList_Check(o) || PyTuple_Check(o)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    lua_createtable(L, (int)n, 0);
    for (Py_ssize_t i = 0; i < n; i++) {
      if (totable(L, PySequence_Fast_GET_ITEM(o, i), depth + 1) < 0) return -1;
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  } else if (PyDict_Check(o)) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    lua_createtable(L, 0, (int)PyDict_GET_SIZE(o));
    while (PyDict_Next(o, &pos, &k, &v)) {
      pya__push(L, k);
      if (lua_isnil(L, -1) ||
          (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))) {
        lua_pop(L, 1);  /* None or NaN: no Lua table can hold that key */
        continue;
      }
      if (totable(L, v, depth + 1) < 0) return -1;
      lua_rawset(L, -3);
    }
  } else pya__push(L, o);
  return 0;
}

static int op_totable(lua_State *L, PyObject *o) {
  return totable(L, o, 0) < 0 ? -1 : 1;
}
static int lib_totable(lua_State *L) {
  if (!pya__toobj(L, 1)) {  /* already a Lua value */
    lua_settop(L, 1);
    return 1;
  }
  return with_obj(L, op_totable);
}

/* --- py.init -------------------------------------------------------------- */

static int lib_setpath(lua_State *L) {
  int took = pya__gil_enter(L);
  PyObject *p = pya__topy(L, 1);
  PyObject *r = p ? PyObject_CallMethod(pya__rt.helper, "_prepend_path", "(O)", p) : NULL;
  Py_XDECREF(p);
  int ok = r != NULL;
  Py_XDECREF(r);
  if (!ok) pya__pusherror(L);
  pya__gil_leave(took);
  if (!ok) return lua_error(L);
  return 0;
}

/* For the specs: the main thread must not keep the GIL between calls. */
static int lib_gil_held(lua_State *L) {
  lua_pushboolean(L, pya__rt.gil_held == 1);
  return 1;
}

/* --- module setup --------------------------------------------------------- */

static int sentinel_gc(lua_State *L) {
  pya__object_forget();
  pya__shutdown(L);
  return 0;
}

static const luaL_Reg core_funcs[] = {
  {"exec", lib_exec}, {"eval", lib_eval}, {"import", lib_import},
  {"getattr", lib_getattr}, {"setattr", lib_setattr}, {"hasattr", lib_hasattr},
  {"item", lib_item}, {"setitem", lib_setitem}, {"delitem", lib_delitem},
  {"call", lib_call}, {"type", lib_type}, {"isinstance", lib_isinstance},
  {"is", lib_is}, {"bytes", lib_bytes}, {"list", lib_list}, {"dict", lib_dict},
  {"tuple", lib_tuple}, {"kw", lib_kw}, {"totable", lib_totable},
  {"_setpath", lib_setpath}, {"_gil_held", lib_gil_held}, {NULL, NULL}};

static void setobj(lua_State *L, const char *name, PyObject *o) {
  pya__pushobj(L, o);
  lua_setfield(L, -2, name);
}

int luaopen_pyasync_sched(lua_State *L);
int luaopen_pyasync_stream(lua_State *L);

PYASYNC_API int luaopen_pyasync_core(lua_State *L) {
  pya__init(L);
  lua_newtable(L);
  luaL_newmetatable(L, PYA_KW);
  lua_pop(L, 1);
  luaL_setfuncs(L, core_funcs, 0);
  luaopen_pyasync_object(L);
  luaopen_pyasync_error(L);
  luaopen_pyasync_sched(L);
  luaopen_pyasync_stream(L);
  luaopen_pyasync_buffer(L);
  luaopen_pyasync_dlpack(L);
  luaopen_pyasync_affinity(L);
  pya__luv_setup(L);
  pya__uvloop();  /* the main thread's loop, before another thread may ask */
  int took = pya__gil_enter(L);
  setobj(L, "builtins", PyImport_AddModule("builtins"));
  setobj(L, "main", PyImport_AddModule("__main__"));
  setobj(L, "None", Py_None);
  setobj(L, "LuaError", pya__rt.LuaError);
  pya__gil_leave(took);
  lua_pushfstring(L, "%d.%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MICRO_VERSION);
  lua_setfield(L, -2, "python_version");
  lua_pushliteral(L, PYASYNC_VERSION);
  lua_setfield(L, -2, "version");
  /* shut down when the state closes: the sentinel is collected last */
  lua_newuserdatauv(L, 1, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sentinel_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "pyasync.sentinel");
  return 1;
}

/* An embedded Lua module: its chunk, called with the module name. */
static int load_embedded(lua_State *L) {
  const struct pya_LuaSource *m = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbuffer(L, m->src, m->len, m->chunkname)) return lua_error(L);
  lua_pushstring(L, m->module);
  lua_call(L, 1, 1);
  return 1;
}

/* The Lua side of pyasync (the files of lua/pyasync) is compiled in: each file is
** preloaded, so that the module and its parts come from one build, unless
** a part is already loaded or preloaded. */
static void preload_embedded(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_pyasync_core);
  lua_setfield(L, -2, "pyasync.core");
  for (const struct pya_LuaSource *m = pya__lua_modules; m->module; m++) {
    if (!strcmp(m->module, "pyasync")) continue;
    if (lua_getfield(L, -1, m->module) == LUA_TNIL) {
      lua_pushlightuserdata(L, (void *)m);
      lua_pushcclosure(L, load_embedded, 1);
      lua_setfield(L, -3, m->module);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

PYASYNC_API int luaopen_pyasync(lua_State *L) {
  preload_embedded(L);
  for (const struct pya_LuaSource *m = pya__lua_modules; m->module; m++)
    if (!strcmp(m->module, "pyasync")) {
      lua_pushlightuserdata(L, (void *)m);
      lua_pushcclosure(L, load_embedded, 1);
      lua_call(L, 0, 1);
      return 1;
    }
  return luaL_error(L, "pyasync: the Lua part was not compiled in");
}

PYASYNC_API void pyasync_preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_pyasync);
  lua_setfield(L, -2, "pyasync");
  lua_pop(L, 1);
}

/* --- the C API for hosts -------------------------------------------------- */

PYASYNC_API int pyasync_runtask(lua_State *L, int nargs, int nresults) {
  int fn = lua_gettop(L) - nargs;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "pyasync");
  int st = lua_pcall(L, 1, 1, 0);
  if (st != LUA_OK) { lua_replace(L, fn); lua_settop(L, fn); return st; }
  lua_getfield(L, -1, "_runmain");
  lua_remove(L, -2);
  lua_insert(L, fn);  /* _runmain, fn, args... */
  st = lua_pcall(L, nargs + 1, LUA_MULTRET, 0);
  if (st != LUA_OK) return st;
  if (!lua_toboolean(L, fn)) {  /* false, message [, error value] */
    lua_pushvalue(L, fn + 1);
    lua_replace(L, fn);
    lua_settop(L, fn);
    return LUA_ERRRUN;
  }
  lua_remove(L, fn);
  if (nresults != LUA_MULTRET) lua_settop(L, fn + nresults - 1);
  return LUA_OK;
}

PYASYNC_API void pyasync_shutdown(lua_State *L) {
  pya__shutdown(L);
}
