/*
** object.c - proxies: Lua userdata holding a Python object (API.md section
** 3).  Every metamethod does its Python work under the GIL, builds either a
** result or an error value, lets go of the GIL and only then raises.
*/
#include "pyasync_int.h"

static char OBJECT_KEY;  /* registry slot of the metatable, by address */
static const void *mt_seen;  /* that metatable's address, once matched */

static void pushmt(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &OBJECT_KEY);
}

void pya__pushobj(lua_State *L, PyObject *o) {
  pya_Proxy *p = (pya_Proxy *)lua_newuserdatauv(L, sizeof *p, 0);
  p->obj = o;
  p->method = 0;
  Py_INCREF(o);
  pushmt(L);
  lua_setmetatable(L, -2);
}

void pya__pushobj_steal(lua_State *L, PyObject *o) {
  pya_Proxy *p = (pya_Proxy *)lua_newuserdatauv(L, sizeof *p, 0);
  p->obj = o;
  p->method = 0;
  pushmt(L);
  lua_setmetatable(L, -2);
}

void pya__pushmethod(lua_State *L, PyObject *o, int recv) {
  recv = lua_absindex(L, recv);
  pya_Proxy *p = (pya_Proxy *)lua_newuserdatauv(L, sizeof *p, 1);
  p->obj = o;
  p->method = PYA_P_METHOD;
  Py_INCREF(o);
  pushmt(L);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, recv);
  lua_setiuservalue(L, -2, 1);
}

/* On the hot path of every call: the metatable is compared by address
** first, and through the registry only when that fails. */
static pya_Proxy *toproxy(lua_State *L, int idx) {
  pya_Proxy *p = (pya_Proxy *)lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  const void *mt = lua_topointer(L, -1);
  if (mt == mt_seen) { lua_pop(L, 1); return p; }
  pushmt(L);
  int ok = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (ok) mt_seen = mt;
  return ok ? p : NULL;
}

/* A closing state's metatable address may be reused by any object. */
void pya__object_forget(void) { mt_seen = NULL; }

PyObject *pya__toobj(lua_State *L, int idx) {
  pya_Proxy *p = toproxy(L, idx);
  if (!p) return NULL;
  if (!p->obj) luaL_error(L, "released Python object");
  if (!pya__rt.initialized) luaL_error(L, "Python has been finalized");
  return p->obj;
}

PyObject *pya__checkobj(lua_State *L, int idx) {
  PyObject *o = pya__toobj(L, idx);
  if (!o) luaL_typeerror(L, idx, "Python object");
  return o;
}

/* Pushes r (stolen) converted, or the pending Python error; returns 1 for a
** result, 0 for an error value.  GIL held. */
static int result(lua_State *L, PyObject *r) {
  if (!r) { pya__pusherror(L); return 0; }
  pya__push(L, r);
  Py_DECREF(r);
  return 1;
}

/* Finishes a metamethod: drop the GIL, then raise if it failed. */
static int finish(lua_State *L, int took, int ok, int nres) {
  pya__gil_leave(took);
  if (!ok) return lua_error(L);
  return nres;
}

/* --- attributes and items ------------------------------------------------- */

static PyObject *getkey(lua_State *L, PyObject *o, int k) {
  if (lua_type(L, k) == LUA_TSTRING) {
    PyObject *name = pya__topy(L, k);  /* bytes if not UTF-8: a dict key */
    if (!name) return NULL;
    PyObject *r = NULL;
    if (PyDict_Check(o)) {  /* dict: item first, then attribute */
      r = PyDict_GetItemWithError(o, name);
      Py_XINCREF(r);
    }
    if (!r && !PyErr_Occurred()) r = PyObject_GetAttr(o, name);
    Py_DECREF(name);
    return r;
  }
  PyObject *key = pya__topy(L, k);
  if (!key) return NULL;
  PyObject *r = PyObject_GetItem(o, key);
  Py_DECREF(key);
  return r;
}

static int object_index(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  PyObject *r = getkey(L, o, 2);
  int ok = r != NULL;
  if (ok && lua_type(L, 2) == LUA_TSTRING && PyCallable_Check(r) &&
      !pya__pushwrapped(L, r))
    pya__pushmethod(L, r, 1);  /* remember the receiver for obj:meth() */
  else if (ok) { pya__push(L, r); }
  else pya__pusherror(L);
  Py_XDECREF(r);
  return finish(L, took, ok, 1);
}

static int setkey(lua_State *L, PyObject *o, int k, int v) {
  PyObject *val = pya__topy(L, v);
  if (!val) return -1;
  PyObject *key = pya__topy(L, k);
  int r = -1;
  if (key) {
    if (lua_type(L, k) == LUA_TSTRING && !PyDict_Check(o))
      r = PyObject_SetAttr(o, key, val);
    else r = PyObject_SetItem(o, key, val);
  }
  Py_XDECREF(key);
  Py_DECREF(val);
  return r;
}

static int object_newindex(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  int ok = setkey(L, o, 2, 3) == 0;
  if (!ok) pya__pusherror(L);
  return finish(L, took, ok, 0);
}

/* --- calls ---------------------------------------------------------------- */

/* obj:meth(a) arrives as meth(obj, a): drop obj when it is the very proxy
** the method was fetched from. */
static int first_arg(lua_State *L) {
  int first = 2;
  if (((pya_Proxy *)lua_touserdata(L, 1))->method == PYA_P_METHOD &&
      lua_type(L, 2) == LUA_TUSERDATA) {
    if (lua_getiuservalue(L, 1, 1) != LUA_TNONE && lua_rawequal(L, -1, 2))
      first = 3;
    lua_pop(L, 1);
  }
  return first;
}

static int object_call(lua_State *L) {
  PyObject *f = pya__checkobj(L, 1);
  int first = first_arg(L);
  int took = pya__gil_enter(L);
  int ok = result(L, pya__call(L, f, first));
  return finish(L, took, ok, 1);
}

/* --- length, strings, comparison ----------------------------------------- */

static int object_len(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  Py_ssize_t n = PyObject_Length(o);
  int ok = n >= 0;
  if (ok) lua_pushinteger(L, (lua_Integer)n);
  else pya__pusherror(L);
  return finish(L, took, ok, 1);
}

static int object_tostring(lua_State *L) {
  PyObject *o = pya__toobj(L, 1);
  if (!o) return luaL_typeerror(L, 1, "Python object");
  int took = pya__gil_enter(L);
  PyObject *s = PyObject_Str(o);
  int ok = s && PyUnicode_Check(s);
  if (ok) {
    Py_ssize_t n;
    const char *c = PyUnicode_AsUTF8AndSize(s, &n);
    ok = c != NULL;
    if (ok) lua_pushlstring(L, c, (size_t)n);
  }
  if (!ok) pya__pusherror(L);
  Py_XDECREF(s);
  return finish(L, took, ok, 1);
}

static int compare(lua_State *L, int op) {
  int took = pya__gil_enter(L);
  PyObject *a = pya__topy(L, 1);
  PyObject *b = a ? pya__topy(L, 2) : NULL;
  int r = b ? PyObject_RichCompareBool(a, b, op) : -1;
  Py_XDECREF(a);
  Py_XDECREF(b);
  if (r >= 0) lua_pushboolean(L, r);
  else pya__pusherror(L);
  return finish(L, took, r >= 0, 1);
}

static int object_eq(lua_State *L) { return compare(L, Py_EQ); }
static int object_lt(lua_State *L) { return compare(L, Py_LT); }
static int object_le(lua_State *L) { return compare(L, Py_LE); }

/* --- arithmetic ----------------------------------------------------------- */

typedef PyObject *(*binop)(PyObject *, PyObject *);

static int arith(lua_State *L, binop op) {
  int took = pya__gil_enter(L);
  PyObject *a = pya__topy(L, 1);
  PyObject *b = a ? pya__topy(L, 2) : NULL;
  PyObject *r = b ? op(a, b) : NULL;
  Py_XDECREF(a);
  Py_XDECREF(b);
  return finish(L, took, result(L, r), 1);
}

static PyObject *py_pow(PyObject *a, PyObject *b) {
  return PyNumber_Power(a, b, Py_None);
}

#define BINOP(name, fn) \
  static int object_##name(lua_State *L) { return arith(L, fn); }
BINOP(add, PyNumber_Add)
BINOP(sub, PyNumber_Subtract)
BINOP(mul, PyNumber_Multiply)
BINOP(div, PyNumber_TrueDivide)
BINOP(idiv, PyNumber_FloorDivide)
BINOP(mod, PyNumber_Remainder)
BINOP(pow, py_pow)
BINOP(band, PyNumber_And)
BINOP(bor, PyNumber_Or)
BINOP(bxor, PyNumber_Xor)
BINOP(shl, PyNumber_Lshift)
BINOP(shr, PyNumber_Rshift)

static int unary(lua_State *L, PyObject *(*op)(PyObject *)) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  return finish(L, took, result(L, op(o)), 1);
}
static int object_unm(lua_State *L) { return unary(L, PyNumber_Negative); }
static int object_bnot(lua_State *L) { return unary(L, PyNumber_Invert); }

/* --- release -------------------------------------------------------------- */

/* py.release(obj) and <close>: drop the reference now, under the GIL. */
static int object_release(lua_State *L) {
  pya_Proxy *p = toproxy(L, 1);
  if (!p) {
    if (lua_isnoneornil(L, 1)) return 0;
    return luaL_typeerror(L, 1, "Python object");
  }
  PyObject *o = p->obj;
  p->obj = NULL;
  if (o && pya__rt.initialized) {
    int took = pya__gil_enter(L);
    Py_DECREF(o);
    pya__gil_leave(took);
  }
  return 0;
}

/* <close> of a proxy from py.enter: exit(proxy, err) first (a Lua function,
** which may wait: lua_callk), then release it. */
static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_settop(L, 1);
  return object_release(L);
}

static int object_close(lua_State *L) {
  pya_Proxy *p = toproxy(L, 1);
  if (!p || p->method != PYA_P_CLOSER) return object_release(L);
  p->method = 0;  /* exits once */
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_callk(L, 2, 0, 0, close_k);
  return close_k(L, LUA_OK, 0);
}

/* core.closer(obj, name, exit) -> obj.name as a proxy (never converted: a
** str or None too) whose <close> calls exit(proxy, err) (py.enter). */
static int object_closer(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  int took = pya__gil_enter(L);
  PyObject *v = PyObject_GetAttrString(o, lua_tostring(L, 2));
  if (v) {
    pya_Proxy *p = (pya_Proxy *)lua_newuserdatauv(L, sizeof *p, 1);
    p->obj = v;  /* the new reference moves to the proxy */
    p->method = PYA_P_CLOSER;
    pushmt(L);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, 1);
  } else pya__pusherror(L);
  return finish(L, took, v != NULL, 1);
}

/* Never waits for the GIL: the reference goes to the pending list. */
static int object_gc(lua_State *L) {
  pya_Proxy *p = (pya_Proxy *)lua_touserdata(L, 1);
  if (p->obj && pya__rt.initialized) pya__defer_decref(p->obj);
  p->obj = NULL;
  return 0;
}

/* --- iteration ------------------------------------------------------------ */

/* for k, v in pairs(obj): the helper hands out (key, value) tuples. */
static int pairs_next(lua_State *L) {
  PyObject *it = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  PyObject *t = PyIter_Next(it);
  int ok = t || !PyErr_Occurred(), n = 1;
  if (!ok) pya__pusherror(L);
  else if (!t) lua_pushnil(L);
  else if (PyTuple_Check(t) && PyTuple_GET_SIZE(t) == 2) {
    PyObject *k = PyTuple_GET_ITEM(t, 0);
    if (k == Py_None) pya__pushobj(L, k); else pya__push(L, k);
    pya__push(L, PyTuple_GET_ITEM(t, 1));
    n = 2;
  } else pya__push(L, t);
  Py_XDECREF(t);
  return finish(L, took, ok, n);
}

static int object_pairs(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  PyObject *it = PyObject_CallMethod(pya__rt.helper, "_pairs", "(O)", o);
  int ok = it != NULL;
  if (ok) {
    lua_pushcfunction(L, pairs_next);
    pya__pushobj(L, it);
    Py_DECREF(it);
  } else pya__pusherror(L);
  return finish(L, took, ok, 2);
}

/* py.iter: values; None comes as py.None so it does not end the loop. */
static int iter_next(lua_State *L) {
  PyObject *it = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  PyObject *v = PyIter_Next(it);
  int ok = v || !PyErr_Occurred();
  if (!ok) pya__pusherror(L);
  else if (!v) lua_pushnil(L);
  else if (v == Py_None) pya__pushobj(L, v);
  else pya__push(L, v);
  Py_XDECREF(v);
  return finish(L, took, ok, 1);
}

static int object_iter(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  PyObject *it = PyObject_GetIter(o);
  int ok = it != NULL;
  if (ok) {
    lua_pushcfunction(L, iter_next);
    pya__pushobj(L, it);
    Py_DECREF(it);
  } else pya__pusherror(L);
  return finish(L, took, ok, 2);
}

static const luaL_Reg object_meta[] = {
  {"__index", object_index}, {"__newindex", object_newindex},
  {"__call", object_call}, {"__len", object_len},
  {"__tostring", object_tostring}, {"__eq", object_eq},
  {"__lt", object_lt}, {"__le", object_le},
  {"__add", object_add}, {"__sub", object_sub}, {"__mul", object_mul},
  {"__div", object_div}, {"__idiv", object_idiv}, {"__mod", object_mod},
  {"__pow", object_pow}, {"__unm", object_unm}, {"__band", object_band},
  {"__bor", object_bor}, {"__bxor", object_bxor}, {"__shl", object_shl},
  {"__shr", object_shr}, {"__bnot", object_bnot},
  {"__close", object_close}, {"__gc", object_gc},
  {"__pairs", object_pairs}, {NULL, NULL}};

static const luaL_Reg object_funcs[] = {
  {"release", object_release}, {"iter", object_iter}, {"closer", object_closer},
  {NULL, NULL}};

int luaopen_pyasync_object(lua_State *L) {
  mt_seen = NULL;
  luaL_newmetatable(L, PYA_OBJECT);
  luaL_setfuncs(L, object_meta, 0);
  lua_pushliteral(L, "pyasync.Object");
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "Python object");
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &OBJECT_KEY);
  luaL_setfuncs(L, object_funcs, 0);  /* into the table on top */
  return 0;
}
