/*
** error.c - PyError values (API.md section 4): a Python exception seen from
** Lua as a table with type, message, traceback and exception, and the way
** back for a Lua error that crossed Python inside a LuaError.
*/
#include "pyasync_int.h"

static char ERROR_KEY;

/* The Lua value a LuaError carries, if exc is one: pushes it, returns 1. */
static int push_lua_value(lua_State *L, PyObject *exc) {
  if (!pya__rt.LuaError || !PyObject_TypeCheck(exc, (PyTypeObject *)pya__rt.LuaError))
    return 0;
  PyObject *ref = PyObject_GetAttrString(exc, "_lua_ref");
  if (!ref) { PyErr_Clear(); return 0; }
  long r = PyLong_Check(ref) ? PyLong_AsLong(ref) : LUA_NOREF;
  Py_DECREF(ref);
  if (PyErr_Occurred() || r == LUA_NOREF) { PyErr_Clear(); return 0; }
  if (r == LUA_REFNIL) lua_pushnil(L);  /* error(nil) */
  else lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)r);
  return 1;
}

static void setstr(lua_State *L, const char *field, PyObject *s) {
  Py_ssize_t n;
  const char *c = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
  if (c) lua_pushlstring(L, c, (size_t)n);
  else { PyErr_Clear(); lua_pushliteral(L, "?"); }
  lua_setfield(L, -2, field);
}

void pya__pushexc(lua_State *L, PyObject *exc) {
  if (push_lua_value(L, exc)) return;
  PyObject *info = PyObject_CallMethod(pya__rt.helper, "_describe", "O", exc);
  lua_createtable(L, 0, 4);
  if (info && PyTuple_Check(info) && PyTuple_GET_SIZE(info) == 3) {
    setstr(L, "type", PyTuple_GET_ITEM(info, 0));
    setstr(L, "message", PyTuple_GET_ITEM(info, 1));
    setstr(L, "traceback", PyTuple_GET_ITEM(info, 2));
  } else {  /* describing failed: say what we can */
    PyErr_Clear();
    lua_pushstring(L, Py_TYPE(exc)->tp_name);
    lua_setfield(L, -2, "type");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "message");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "traceback");
  }
  Py_XDECREF(info);
  pya__pushobj(L, exc);
  lua_setfield(L, -2, "exception");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ERROR_KEY);
  lua_setmetatable(L, -2);
}

void pya__pusherror(lua_State *L) {
  PyObject *exc = pya__fetch_exc();
  if (!exc) {
    lua_pushliteral(L, "pyasync: error without a Python exception");
    return;
  }
  pya__pushexc(L, exc);
  Py_DECREF(exc);
}

void pya__pusherr_simple(lua_State *L, const char *type, const char *msg) {
  PyObject *exc = PyObject_CallMethod(pya__rt.helper, "_make_exc", "ss", type, msg);
  if (!exc) { pya__pusherror(L); return; }
  pya__pushexc(L, exc);
  Py_DECREF(exc);
}

/* tostring(e): "Type: message" and the Python traceback. */
static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "type");
  lua_getfield(L, 1, "message");
  lua_getfield(L, 1, "traceback");
  const char *tb = lua_tostring(L, 4);
  lua_pushfstring(L, "%s: %s%s%s", luaL_optstring(L, 2, "?"),
                  luaL_optstring(L, 3, ""), tb && *tb ? "\n" : "", tb ? tb : "");
  return 1;
}

/* py.iserror(e [, name_or_class]): a PyError, of that class (or a subclass;
** a name matches any class of the exception's MRO). */
static int error_iserror(lua_State *L) {
  lua_settop(L, 2);
  int is = lua_getmetatable(L, 1);
  if (is) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ERROR_KEY);
    is = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  /* check the class before taking the GIL: a bad one raises */
  int byname = lua_type(L, 2) == LUA_TSTRING;
  PyObject *cls = byname || lua_isnil(L, 2) ? NULL : pya__toobj(L, 2);
  if (!byname && !cls && !lua_isnil(L, 2))
    return luaL_typeerror(L, 2, "string or Python class");
  if (!is || lua_isnil(L, 2)) { lua_pushboolean(L, is); return 1; }
  lua_getfield(L, 1, "exception");
  PyObject *exc = pya__toobj(L, -1);
  if (!exc) { lua_pushboolean(L, 0); return 1; }
  int took = pya__gil_enter(L);
  int r;
  if (byname) {
    PyObject *res = PyObject_CallMethod(pya__rt.helper, "_isinstance_name",
                                        "Os", exc, lua_tostring(L, 2));
    r = res ? PyObject_IsTrue(res) : -1;
    Py_XDECREF(res);
  } else r = PyObject_IsInstance(exc, cls);
  int ok = r >= 0;
  if (ok) lua_pushboolean(L, r);
  else pya__pusherror(L);
  pya__gil_leave(took);
  if (!ok) return lua_error(L);
  return 1;
}

int luaopen_pyasync_error(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "PyError");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, PYA_ERROR);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ERROR_KEY);
  lua_pushcfunction(L, error_iserror);
  lua_setfield(L, -2, "iserror");
  return 0;
}
