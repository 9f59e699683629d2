/*
** convert.c - values crossing the boundary (API.md section 2).  Lua to
** Python returns new references or NULL with a Python exception set; Python
** to Lua never fails.  Both run on the main thread with the GIL held, and
** touch Lua tables only with raw access so no metamethod runs meanwhile;
** they never raise a Lua error, which would leave the GIL taken.
*/
#include "pyasync_int.h"

#define MAX_DEPTH 200

static PyObject *topy(lua_State *L, int idx, int seen, int depth);

static PyObject *string_topy(lua_State *L, int idx) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  PyObject *u = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);
  if (u || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return u;
  PyErr_Clear();  /* not UTF-8: the bytes as they are */
  return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
}

/* Whether the table at idx has exactly the keys 1..n; sets *n. */
static int is_sequence(lua_State *L, int idx, lua_Integer *n) {
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return 0;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k > max) max = k;
    count++;
  }
  *n = count;
  return count == max;
}

static PyObject *list_topy(lua_State *L, int idx, lua_Integer n, int seen,
                           int depth) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (!list) return NULL;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    PyObject *v = topy(L, lua_gettop(L), seen, depth);
    lua_pop(L, 1);
    if (!v) { Py_DECREF(list); return NULL; }
    PyList_SET_ITEM(list, (Py_ssize_t)(i - 1), v);
  }
  return list;
}

/* Two Lua keys can be one Python key (true and 1): an error rather than a
** lost value.  This also keeps every converted table alive until the end,
** which the memo in table_topy relies on. */
static int dict_add(PyObject *d, PyObject *k, PyObject *v) {
  int has = PyDict_Contains(d, k);
  if (has > 0) PyErr_Format(PyExc_ValueError, "table keys collide in Python: %R", k);
  return has != 0 ? -1 : PyDict_SetItem(d, k, v);
}

static PyObject *dict_topy(lua_State *L, int idx, int seen, int depth) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    PyObject *k = topy(L, top - 1, seen, depth);
    PyObject *v = k ? topy(L, top, seen, depth) : NULL;
    int bad = !v || dict_add(d, k, v) < 0;
    Py_XDECREF(k);
    Py_XDECREF(v);
    lua_pop(L, 1);
    if (bad) { lua_pop(L, 1); Py_DECREF(d); return NULL; }
  }
  return d;
}

/* The object of the proxy at idx as a new reference; NULL and a Python
** exception for a released one.  pya__toobj would raise a Lua error. */
static PyObject *proxy_topy(lua_State *L, int idx, int *isproxy) {
  pya_Proxy *p = (pya_Proxy *)luaL_testudata(L, idx, PYA_OBJECT);
  *isproxy = p != NULL;
  if (p && !p->obj) PyErr_SetString(PyExc_ValueError, "released Python object");
  if (!p || !p->obj) return NULL;
  Py_INCREF(p->obj);
  return p->obj;
}

/* A PyError table goes back to Python as its exception. */
static PyObject *error_topy(lua_State *L, int idx) {
  int isproxy;
  lua_pushliteral(L, "exception");
  lua_rawget(L, idx);
  PyObject *o = proxy_topy(L, -1, &isproxy);
  lua_pop(L, 1);
  if (!isproxy) PyErr_SetString(PyExc_TypeError, "PyError without exception");
  return o;
}

static PyObject *table_topy(lua_State *L, int idx, int seen, int depth) {
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, PYA_ERROR);
    int iserr = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (iserr) return error_topy(L, idx);
    /* a Lua object standing for a Python one (py.Queue): its _obj proxy */
    if (luaL_getmetafield(L, idx, "__pyobject") != LUA_TNIL) {
      int isproxy;
      lua_pop(L, 1);
      lua_pushliteral(L, "_obj");
      lua_rawget(L, idx);
      PyObject *o = proxy_topy(L, -1, &isproxy);
      lua_pop(L, 1);
      if (isproxy) return o;
    }
  }
  if (depth >= MAX_DEPTH) {
    PyErr_SetString(PyExc_ValueError, "table nested too deeply");
    return NULL;
  }
  if (!lua_checkstack(L, 8)) return PyErr_NoMemory();
  /* seen[t]: true while t is being converted (met again: a cycle), then
  ** its Python object, so a table met twice becomes one object met twice
  ** (aliasing kept, and no exponential work on shared subtables). */
  lua_pushvalue(L, idx);
  int t = lua_rawget(L, seen);
  PyObject *done = t == LUA_TLIGHTUSERDATA ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 1);
  if (done) { Py_INCREF(done); return done; }
  if (t != LUA_TNIL) {
    PyErr_SetString(PyExc_ValueError, "cannot convert a cyclic table");
    return NULL;
  }
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  lua_Integer n;
  PyObject *r = is_sequence(L, idx, &n) ? list_topy(L, idx, n, seen, depth + 1)
                                        : dict_topy(L, idx, seen, depth + 1);
  lua_pushvalue(L, idx);  /* borrowed: the result being built holds it */
  if (r) lua_pushlightuserdata(L, r); else lua_pushnil(L);
  lua_rawset(L, seen);
  return r;
}

static PyObject *userdata_topy(lua_State *L, int idx) {
  int isproxy;
  PyObject *o = proxy_topy(L, idx, &isproxy);
  if (isproxy) return o;
  if (luaL_testudata(L, idx, PYA_VIEW)) return pya__view_topy(L, idx);
  if (luaL_testudata(L, idx, PYA_TENSOR)) return pya__tensor_topy(L, idx);
  PyErr_Format(PyExc_TypeError, "cannot convert %s to Python",
               luaL_typename(L, idx));
  return NULL;
}

static PyObject *topy(lua_State *L, int idx, int seen, int depth) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: Py_RETURN_NONE;
    case LUA_TBOOLEAN: return PyBool_FromLong(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        return PyLong_FromLongLong((long long)lua_tointeger(L, idx));
      return PyFloat_FromDouble((double)lua_tonumber(L, idx));
    case LUA_TSTRING: return string_topy(L, idx);
    case LUA_TUSERDATA: return userdata_topy(L, idx);
    case LUA_TFUNCTION: return pya__wrapfunc(L, idx);
    case LUA_TTABLE:
      if (!seen) {
        lua_newtable(L);
        PyObject *r = table_topy(L, idx, lua_gettop(L), depth);
        lua_pop(L, 1);
        return r;
      }
      return table_topy(L, idx, seen, depth);
    default:
      PyErr_Format(PyExc_TypeError, "cannot convert %s to Python",
                   luaL_typename(L, idx));
      return NULL;
  }
}

PyObject *pya__topy(lua_State *L, int idx) {
  return topy(L, lua_absindex(L, idx), 0, 0);
}

/* --- Python to Lua -------------------------------------------------------- */

static void push_str(lua_State *L, PyObject *o) {
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s) { lua_pushlstring(L, s, (size_t)n); return; }
  PyErr_Clear();  /* lone surrogates: keep them rather than fail */
  PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
  if (b) lua_pushlstring(L, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
  else { PyErr_Clear(); lua_pushliteral(L, ""); }
  Py_XDECREF(b);
}

int pya__toscalar(PyObject *o, pya_Scalar *s) {
  if (o == Py_True || o == Py_False) {
    s->tag = PYA_V_BOOL;
    s->u.i = o == Py_True;
  } else if (PyLong_Check(o)) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      return 0;  /* a big int: a proxy */
    }
    s->tag = PYA_V_INT;
    s->u.i = (lua_Integer)v;
  } else if (PyFloat_Check(o)) {
    s->tag = PYA_V_NUM;
    s->u.d = PyFloat_AS_DOUBLE(o);
  } else return 0;
  return 1;
}

void pya__pushscalar(lua_State *L, const pya_Scalar *s) {
  switch (s->tag) {
    case PYA_V_BOOL: lua_pushboolean(L, (int)s->u.i); break;
    case PYA_V_INT: lua_pushinteger(L, s->u.i); break;
    case PYA_V_NUM: lua_pushnumber(L, s->u.d); break;
    default: lua_pushnil(L);
  }
}

void pya__push(lua_State *L, PyObject *o) {
  pya_Scalar sc;
  if (o == Py_None) lua_pushnil(L);
  else if (pya__toscalar(o, &sc)) pya__pushscalar(L, &sc);
  else if (PyLong_Check(o)) pya__pushobj(L, o);  /* a big int */
  else if (PyUnicode_Check(o)) push_str(L, o);
  else if (PyBytes_Check(o))
    lua_pushlstring(L, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
  else if (!pya__pushwrapped(L, o)) pya__pushobj(L, o);
}
