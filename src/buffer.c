/*
** buffer.c - py.buffer and py.array (API.md section 7): Views over the
** PEP 3118 buffer of a Python object, which stays pinned until the View is
** released, and Lua-owned arrays whose memory Python shares.
*/
#include "buffer.h"

static const char BUF_CAPSULE[] = "pyasync.buffer";

/* Marks a failure whose Python exception is set (vs. a message). */
static const char PYERR[] = "";

/* The held Py_buffer sits on the heap inside a capsule: a View collected
** without the GIL defers the capsule, and PyBuffer_Release runs when the
** deferred list is next drained under the GIL. */
static void holder_destroy(PyObject *cap) {
  Py_buffer *b = (Py_buffer *)PyCapsule_GetPointer(cap, BUF_CAPSULE);
  if (!b) { PyErr_Clear(); return; }
  PyBuffer_Release(b);
  PyMem_Free(b);
}

/* Copies the layout of b into v; NULL, PYERR, or a message in msg. */
static const char *layout(pya_View *v, const Py_buffer *b, char *msg, size_t n) {
  if (b->itemsize <= 0) return "invalid buffer itemsize";
  int type = pya__parse_format(b->format, b->itemsize);
  if (type == PYA_T_NONE) {
    snprintf(msg, n, "unsupported buffer format '%.40s' (supported: one of "
             "b B h H i I l L q Q n N e f d ?, native byte order)",
             b->format ? b->format : "B");
    return msg;
  }
  if (b->suboffsets) return "indirect buffers (suboffsets) are not supported";
  if (b->ndim < 0 || b->ndim > PYA_MAX_DIMS) return "too many dimensions";
  if (!pya__view_dims(v, b->ndim)) { PyErr_NoMemory(); return PYERR; }
  /* exporters written in C need not validate: never trust a size */
  Py_ssize_t want = b->itemsize;
  for (int d = b->ndim - 1; d >= 0; d--) {  /* no strides: C order */
    v->shape[d] = b->shape ? b->shape[d] : b->len / b->itemsize;
    if (v->shape[d] < 0) return "invalid buffer shape";
    v->strides[d] = b->strides ? b->strides[d] : want;
    if (!b->strides && __builtin_mul_overflow(want, v->shape[d], &want))
      return "buffer too large";
  }
  v->type = (uint8_t)type;
  v->itemsize = (int)b->itemsize;
  v->data = v->base = (char *)b->buf;
  v->device.device_type = kDLCPU;
  v->dtype = pya__type_dl(type);
  snprintf(v->format, sizeof v->format, "%s", b->format ? b->format : "B");
  return NULL;
}

/* GIL held: fills v from obj's buffer, held by a capsule that v's memory
** record owns.  mode: 0 (writable if allowed), 'r' or 'w'. */
static const char *take_buffer(pya_View *v, PyObject *obj, int mode, char *msg,
                               size_t n) {
  Py_buffer *b = (Py_buffer *)PyMem_Calloc(1, sizeof *b);
  if (!b) { PyErr_NoMemory(); return PYERR; }
  if (PyObject_GetBuffer(obj, b, mode == 'w' ? PyBUF_RECORDS : PyBUF_RECORDS_RO) < 0) {
    PyMem_Free(b);
    return PYERR;
  }
  PyObject *cap = PyCapsule_New(b, BUF_CAPSULE, holder_destroy);
  if (!cap) { PyBuffer_Release(b); PyMem_Free(b); return PYERR; }
  const char *err = layout(v, b, msg, n);
  pya_Mem *m = err ? NULL : pya__mem_new(0);
  if (!err && !m) { PyErr_NoMemory(); err = PYERR; }
  if (err) { Py_DECREF(cap); return err; }  /* releases the buffer */
  m->owner = cap;
  v->mem = m;
  v->pyobj = Py_NewRef(obj);
  v->kind = PYA_KIND_BUFFER;
  v->pyowned = 1;
  v->readonly = b->readonly || mode == 'r';
  if (!pya__view_finish(v)) return "buffer too large";
  return NULL;
}

/* What py.buffer accepts, checked before taking the GIL (a released proxy
** raises). */
static void check_source(lua_State *L, int idx) {
  if (pya__toobj(L, idx) || pya__toview(L, idx) || lua_type(L, idx) == LUA_TSTRING) return;
  luaL_typeerror(L, idx, "Python object");
}

/* GIL held: the object to view; a Lua string is always bytes. */
static PyObject *source(lua_State *L, int idx) {
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING) return pya__topy(L, idx);
  const char *s = lua_tolstring(L, idx, &n);
  return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
}

/* py.buffer(obj [, "r"|"w"]) */
static int buffer_buffer(lua_State *L) {
  static const char *const modes[] = {"r", "w", NULL};
  check_source(L, 1);
  int mode = lua_isnoneornil(L, 2) ? 0 : "rw"[luaL_checkoption(L, 2, NULL, modes)];
  pya_View *v = pya__view_new(L, PYA_VIEW);  /* released state until filled */
  char msg[200];
  int took = pya__gil_enter(L);
  PyObject *o = source(L, 1);
  const char *err = o ? take_buffer(v, o, mode, msg, sizeof msg) : PYERR;
  Py_XDECREF(o);
  if (err == PYERR) pya__pusherror(L);
  else if (err) lua_pushstring(L, err);
  pya__gil_leave(took);
  if (err) return lua_error(L);
  return 1;
}

/* A struct format ("d", "<i") or a dtype name ("float32"). */
static int array_type(lua_State *L, int idx) {
  const char *fmt = luaL_checkstring(L, idx);
  int type = pya__parse_format(fmt, -1);
  if (type == PYA_T_NONE) type = pya__type_byname(fmt);
  if (type == PYA_T_NONE || !pya__type_format(type)[0])
    luaL_argerror(L, idx, lua_pushfstring(L, "unsupported format '%s'", fmt));
  return type;
}

static void array_fill(lua_State *L, pya_View *v, int t, lua_Integer n) {
  char tmp[8];
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, t, i);
    const char *why = pya__encode(L, v->type, -1, tmp);
    if (why) luaL_error(L, "py.array: element %I: %s", i, why);
    memcpy(v->data + (i - 1) * v->itemsize, tmp, (size_t)v->itemsize);
    lua_pop(L, 1);
  }
}

/* py.array(fmt, n_or_table): zeroed, or filled from the table. */
static int buffer_array(lua_State *L) {
  int type = array_type(L, 1), size = pya__type_size(type);
  int istable = lua_type(L, 2) == LUA_TTABLE;
  lua_Integer n = istable ? luaL_len(L, 2) : luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "negative size");
  if ((lua_Unsigned)n > (lua_Unsigned)(PY_SSIZE_T_MAX - PYA_MEM_HEADER) / (lua_Unsigned)size)
    return luaL_error(L, "py.array: %I elements is too many", n);
  pya_View *v = pya__view_new(L, PYA_VIEW);
  pya_Mem *m = pya__mem_new((size_t)n * (size_t)size);
  if (!m) return luaL_error(L, "py.array: not enough memory for %I elements", n);
  v->mem = m;
  v->kind = PYA_KIND_ARRAY;
  v->type = (uint8_t)type;
  v->itemsize = size;
  v->data = v->base = pya__mem_data(m);
  v->device.device_type = kDLCPU;
  v->dtype = pya__type_dl(type);
  snprintf(v->format, sizeof v->format, "%s", pya__type_format(type));
  pya__view_dims(v, 1);
  v->shape[0] = (Py_ssize_t)n;
  v->strides[0] = size;
  pya__view_finish(v);
  if (istable) array_fill(L, v, 2, n);
  return 1;
}

/* py._buffer_stats(): live memory records, DLPack capsules we produced
** whose deleter has not run, and consumed tensors whose deleter has not. */
static int buffer_stats(lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)atomic_load(&pya__live_mems));
  lua_setfield(L, -2, "blocks");
  lua_pushinteger(L, (lua_Integer)atomic_load(&pya__live_exports));
  lua_setfield(L, -2, "exports");
  lua_pushinteger(L, (lua_Integer)atomic_load(&pya__live_imports));
  lua_setfield(L, -2, "imports");
  return 1;
}

static int buffer_prop(lua_State *L, pya_View *v, const char *k) {
  if (pya__view_commonprop(L, v, k)) return 1;
  if (!strcmp(k, "strides")) pya__pushdims(L, v, 1, 1);
  else if (!strcmp(k, "format")) lua_pushstring(L, v->format);
  else return 0;
  return 1;
}

/* v[i] costs a comparison and a load; the rest comes after. */
static int buffer_index(lua_State *L) {
  pya_View *v = pya__toview(L, 1);
  if (pya__view_fastget(L, v)) return 1;
  return pya__view_index(L, v, buffer_prop);
}

PyObject *pya__view_topy(lua_State *L, int idx) {
  return pya__view_face(L, idx);
}

static const luaL_Reg buffer_funcs[] = {
  {"buffer", buffer_buffer}, {"array", buffer_array},
  {"_buffer_stats", buffer_stats}, {NULL, NULL}};

int luaopen_pyasync_buffer(lua_State *L) {
  luaL_newmetatable(L, PYA_VIEW);
  luaL_setfuncs(L, pya__view_meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, pya__view_methods, 0);
  lua_pushcclosure(L, buffer_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "pyasync.View");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  luaL_setfuncs(L, buffer_funcs, 0);
  int took = pya__gil_enter(L);
  int ok = pya__export_init() == 0;
  if (!ok) pya__pusherror(L);
  pya__gil_leave(took);
  if (!ok) return lua_error(L);
  return 0;
}
