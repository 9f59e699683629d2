/*
** stream.c - the C parts of async iteration and the Queue bridge (API.md
** section 6): batches of items converted into one Lua table, closing an
** abandoned async iterator without the GIL, and references for LuaError.
** The iteration protocol itself is in lua/pyasync and src/helper.py.
*/
#include <stdlib.h>

#include "pyasync_int.h"

static PyTypeObject *batch_type;  /* helper._Batch */

int pya__isbatch(PyObject *o) {
  return batch_type && Py_TYPE(o) == batch_type;
}

/* A _Batch as {n = k, v1, ..., vk}; None items come as py.None so that a
** generic for does not stop at them.  GIL held. */
void pya__push_batch(lua_State *L, PyObject *o) {
  Py_ssize_t n = PyTuple_GET_SIZE(o);
  lua_createtable(L, (int)n, 1);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *v = PyTuple_GET_ITEM(o, i);
    if (v == Py_None) pya__pushobj(L, v);
    else pya__push(L, v);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, "n");
}

/* core.aiter_open(obj [, prefetch]) -> proxy of helper._Lazy, or of
** helper._Prefetch and its _Ring */
static int stream_aiter_open(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  lua_Integer pf = luaL_optinteger(L, 2, 0);
  if (pf < 0) return luaL_argerror(L, 2, "prefetch must be positive");
  int took = pya__gil_enter(L);
  PyObject *r = pf ? PyObject_CallMethod(pya__rt.helper, "_aiter", "OL", o, (long long)pf)
                   : PyObject_CallMethod(pya__rt.helper, "_aiter", "(O)", o);
  PyObject *ring = r && pf ? PyObject_GetAttrString(r, "ring") : NULL;
  if (r && (ring || !pf)) {
    pya__pushobj(L, r);
    if (ring) pya__pushobj(L, ring);
  } else pya__pusherror(L);
  Py_XDECREF(r);
  Py_XDECREF(ring);
  pya__gil_leave(took);
  if (!r || (pf && !ring)) return lua_error(L);
  return pf ? 2 : 1;
}

/* core.aclose_nowait(proxy): schedules aclose() on the loop and releases
** the proxy; never waits for the GIL, so __gc and __close may call it. */
static int stream_aclose_nowait(lua_State *L) {
  pya_Proxy *p = luaL_testudata(L, 1, PYA_OBJECT);
  if (!p || !p->obj || pya__rt.closing || !pya__loop_running()) return 0;
  pya_Sub *s = calloc(1, sizeof *s);
  if (!s) return 0;
  s->op = PYA_OP_ACLOSE;
  s->obj = p->obj;  /* the proxy's reference moves to the record */
  p->obj = NULL;
  pya__submit(s);
  return 0;
}

/* core.q_try_get(q) -> item (None as py.None) | false while empty | nil
** once closed and drained: q:get() without waiting (helper._q_try_get). */
static int stream_q_try_get(lua_State *L) {
  PyObject *q = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  static PyObject *try_get;  /* kept */
  if (!try_get) try_get = PyObject_GetAttrString(pya__rt.helper, "_q_try_get");
  PyObject *r = try_get ? PyObject_CallOneArg(try_get, q) : NULL;
  if (!r) pya__pusherror(L);
  else if (!pya__isbatch(r)) lua_pushboolean(L, 0);
  else if (PyTuple_GET_SIZE(r) == 0) lua_pushnil(L);
  else {
    PyObject *v = PyTuple_GET_ITEM(r, 0);
    if (v == Py_None) pya__pushobj(L, v);
    else pya__push(L, v);
  }
  Py_XDECREF(r);
  pya__gil_leave(took);
  if (!r) return lua_error(L);
  return 1;
}

/* core.ref(v) -> integer: a registry reference a LuaError will own. */
static int stream_ref(lua_State *L) {
  lua_settop(L, 1);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}

static const luaL_Reg stream_funcs[] = {
  {"aiter_open", stream_aiter_open}, {"aclose_nowait", stream_aclose_nowait},
  {"ref", stream_ref}, {"q_try_get", stream_q_try_get}, {NULL, NULL}};

int luaopen_pyasync_stream(lua_State *L) {
  int took = pya__gil_enter(L);
  PyObject *b = PyObject_GetAttrString(pya__rt.helper, "_Batch");
  if (b && PyType_Check(b)) batch_type = (PyTypeObject *)b;  /* kept */
  else { Py_XDECREF(b); PyErr_Clear(); }
  pya__pushobj(L, pya__rt.helper);
  lua_setfield(L, -2, "_helper");
  int bad = pya__ring_open(L) < 0;
  if (bad) pya__pusherror(L);
  pya__gil_leave(took);
  if (bad) return lua_error(L);
  luaL_setfuncs(L, stream_funcs, 0);
  return 0;
}
