/*
** dlpack.c - DLPack (API.md section 7): py.from_dlpack consumes a
** producer's "dltensor" capsule into a Tensor whose deleter runs exactly
** once, with the GIL held, after the last holder lets go; and the producer
** side, __dlpack__/__dlpack_device__ of Views and Tensors handed to Python.
*/
#include <stdlib.h>

#include "buffer.h"

static const char OWNER_CAPSULE[] = "pyasync.dlpack";
static const char PYERR[] = "";  /* a failure with a Python exception set */

/* --- consuming ------------------------------------------------------------ */

/* The consumed DLManagedTensor sits in a capsule of ours whose destructor
** runs the producer's deleter: capsules die under the GIL, and a Tensor
** collected without it defers the capsule (view.c, pya__mem_release). */
static void owner_destroy(PyObject *cap) {
  DLManagedTensor *mt = (DLManagedTensor *)PyCapsule_GetPointer(cap, OWNER_CAPSULE);
  if (!mt) { PyErr_Clear(); return; }
  if (mt->deleter) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);  /* a deleter may run Python code */
    mt->deleter(mt);
    PyErr_Restore(t, v, tb);
  }
  atomic_fetch_sub(&pya__live_imports, 1);
}

static int host_memory(DLDevice d) {
  return d.device_type == kDLCPU || d.device_type == kDLCUDAHost ||
         d.device_type == kDLROCMHost;
}

/* Checks the DLTensor and copies its layout into v (strides to bytes). */
static const char *layout(pya_View *v, const DLTensor *t) {
  static char empty;  /* a non-NULL address for an empty tensor */
  if (t->ndim < 0 || t->ndim > PYA_MAX_DIMS) return "DLPack tensor: bad ndim";
  if (t->ndim > 0 && !t->shape) return "DLPack tensor without a shape";
  if (t->dtype.bits == 0 || t->dtype.lanes == 0) return "DLPack tensor: bad dtype";
  if (!pya__view_dims(v, t->ndim)) { PyErr_NoMemory(); return PYERR; }
  int size = (t->dtype.bits * t->dtype.lanes + 7) / 8;
  Py_ssize_t want = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t es = t->strides ? t->strides[d] : (int64_t)want;
    if (t->shape[d] < 0 || t->shape[d] > PY_SSIZE_T_MAX) return "DLPack tensor: bad shape";
    if (es > PY_SSIZE_T_MAX / size || es < -(PY_SSIZE_T_MAX / size))
      return "DLPack tensor: stride too large";
    v->shape[d] = (Py_ssize_t)t->shape[d];
    v->strides[d] = (Py_ssize_t)es * size;
    if (v->shape[d] && want > PY_SSIZE_T_MAX / v->shape[d]) return "DLPack tensor too large";
    want *= v->shape[d] ? v->shape[d] : 1;
  }
  v->itemsize = size;
  v->type = (uint8_t)pya__type_fromdl(t->dtype);
  v->dtype = t->dtype;
  v->device = t->device;
  v->base = t->data;
  v->byte_offset = t->byte_offset;
  snprintf(v->format, sizeof v->format, "%s", pya__type_format(v->type));
  if (!pya__view_finish(v)) return "DLPack tensor too large";
  if (host_memory(t->device)) {
    if (!t->data && v->nelem) return "DLPack tensor with NULL data";
    v->data = t->data ? (char *)t->data + t->byte_offset : &empty;
  }
  return NULL;
}

/* The capsule to consume: obj itself if it is one, else obj.__dlpack__(). */
static PyObject *get_capsule(PyObject *obj, char *msg, size_t n, const char **err) {
  if (PyCapsule_CheckExact(obj)) return Py_NewRef(obj);
  PyObject *m = PyObject_GetAttrString(obj, "__dlpack__");
  if (!m) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) { *err = PYERR; return NULL; }
    PyErr_Clear();
    snprintf(msg, n, "py.from_dlpack: a %.60s has no __dlpack__ method",
             Py_TYPE(obj)->tp_name);
    *err = msg;
    return NULL;
  }
  PyObject *cap = PyObject_CallNoArgs(m);
  Py_DECREF(m);
  if (!cap) *err = PYERR;
  return cap;
}

static const char *check_capsule(PyObject *cap, char *msg, size_t n) {
  if (!PyCapsule_CheckExact(cap)) {
    snprintf(msg, n, "py.from_dlpack: __dlpack__ returned a %.60s, not a capsule",
             Py_TYPE(cap)->tp_name);
    return msg;
  }
  const char *name = PyCapsule_GetName(cap);
  if (name && !strcmp(name, "used_dltensor"))
    return "py.from_dlpack: DLPack capsule already consumed";
  if (!name || strcmp(name, "dltensor")) {
    snprintf(msg, n, "py.from_dlpack: not a DLPack capsule (name '%.60s')",
             name ? name : "NULL");
    return msg;
  }
  return NULL;
}

/* Takes ownership of the capsule's tensor: renamed "used_dltensor", its
** deleter is ours to call.  Nothing can fail once the name has changed. */
static const char *consume(pya_View *v, PyObject *cap, char *msg, size_t n) {
  const char *err = check_capsule(cap, msg, n);
  if (err) return err;
  DLManagedTensor *mt = (DLManagedTensor *)PyCapsule_GetPointer(cap, "dltensor");
  if (!mt) return PYERR;
  if ((err = layout(v, &mt->dl_tensor))) return err;
  pya_Mem *m = pya__mem_new(0);
  PyObject *owner = m ? PyCapsule_New(mt, OWNER_CAPSULE, NULL) : NULL;
  if (!owner || PyCapsule_SetName(cap, "used_dltensor") < 0) {
    Py_XDECREF(owner);  /* no destructor yet: the producer keeps the tensor */
    if (m) pya__mem_release(m, PYA_GIL_HELD);
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return PYERR;
  }
  PyCapsule_SetDestructor(owner, owner_destroy);
  atomic_fetch_add(&pya__live_imports, 1);
  m->owner = owner;
  v->mem = m;
  v->kind = PYA_KIND_TENSOR;
  v->pyowned = 1;
  pya__view_finish(v);  /* arms the fast path now that v holds memory */
  return NULL;
}

/* py.from_dlpack(obj): obj a producer, a DLPack capsule, or a View/Tensor. */
static int dlpack_from_dlpack(lua_State *L) {
  if (!pya__toobj(L, 1) && !pya__toview(L, 1))
    return luaL_typeerror(L, 1, "Python object");
  pya_View *v = pya__view_new(L, PYA_TENSOR);  /* released state until filled */
  char msg[200];
  const char *err = PYERR;
  int took = pya__gil_enter(L);
  PyObject *o = pya__topy(L, 1);
  PyObject *cap = o ? get_capsule(o, msg, sizeof msg, &err) : NULL;
  if (cap) err = consume(v, cap, msg, sizeof msg);
  Py_XDECREF(cap);
  Py_XDECREF(o);
  if (err == PYERR) pya__pusherror(L);
  else if (err) lua_pushstring(L, err);
  pya__gil_leave(took);
  if (err) return lua_error(L);
  return 1;
}

/* --- producing ------------------------------------------------------------
** The DLManagedTensor we hand out holds a reference on the memory; its
** deleter drops it (from any thread: pya__mem_release never waits). */

typedef struct {
  DLManagedTensor mt;
  pya_Mem *mem;
  int64_t dims[];      /* shape, then strides in elements */
} Export;

static void export_deleter(DLManagedTensor *mt) {
  Export *e = (Export *)mt->manager_ctx;
  pya__mem_release(e->mem, PYA_GIL_UNKNOWN);
  atomic_fetch_sub(&pya__live_exports, 1);
  free(e);
}

/* A capsule nobody consumed still owns its tensor. */
static void export_capsule_destroy(PyObject *cap) {
  if (!PyCapsule_IsValid(cap, "dltensor")) return;  /* consumed: not ours */
  DLManagedTensor *mt = (DLManagedTensor *)PyCapsule_GetPointer(cap, "dltensor");
  mt->deleter(mt);
}

/* copy=True and another dl_device are refused; stream and max_version are
** accepted and ignored (we only make unversioned 0.6 capsules). */
static int check_kwargs(const pya_View *v, PyObject *args, PyObject *kw) {
  if (args && PyTuple_GET_SIZE(args) > 0) {
    PyErr_SetString(PyExc_TypeError, "__dlpack__() takes keyword arguments only");
    return -1;
  }
  PyObject *copy = kw ? PyDict_GetItemString(kw, "copy") : NULL;
  if (copy && PyObject_IsTrue(copy) == 1) {
    PyErr_SetString(PyExc_BufferError, "pyasync shares memory: copy=True is not supported");
    return -1;
  }
  PyObject *dev = kw ? PyDict_GetItemString(kw, "dl_device") : NULL;
  if (dev && dev != Py_None) {
    PyObject *mine = pya__dlpack_device(v);
    int same = mine ? PyObject_RichCompareBool(dev, mine, Py_EQ) : -1;
    Py_XDECREF(mine);
    if (same < 0) return -1;
    if (!same) {
      PyErr_SetString(PyExc_BufferError, "cannot export to another device");
      return -1;
    }
  }
  return 0;
}

PyObject *pya__dlpack_capsule(const pya_View *v, PyObject *args, PyObject *kw) {
  if (check_kwargs(v, args, kw) < 0) return NULL;
  if (v->readonly) {
    PyErr_SetString(PyExc_BufferError, "read-only memory cannot be exported through DLPack");
    return NULL;
  }
  Export *e = (Export *)malloc(sizeof *e + 2 * (size_t)v->ndim * sizeof(int64_t));
  if (!e) return PyErr_NoMemory();
  for (int d = 0; d < v->ndim; d++) {
    if (v->strides[d] % v->itemsize) {
      free(e);
      PyErr_SetString(PyExc_BufferError, "strides are not a multiple of the item size");
      return NULL;
    }
    e->dims[d] = v->shape[d];
    e->dims[v->ndim + d] = v->strides[d] / v->itemsize;
  }
  DLTensor t = {v->base, v->device, v->ndim, v->dtype, e->dims, e->dims + v->ndim,
                v->byte_offset};
  e->mt.dl_tensor = t;
  e->mt.manager_ctx = e;
  e->mt.deleter = export_deleter;
  e->mem = v->mem;
  pya__mem_retain(v->mem);
  atomic_fetch_add(&pya__live_exports, 1);
  PyObject *cap = PyCapsule_New(&e->mt, "dltensor", export_capsule_destroy);
  if (!cap) export_deleter(&e->mt);
  return cap;
}

PyObject *pya__dlpack_device(const pya_View *v) {
  return Py_BuildValue("(ii)", (int)v->device.device_type, v->device.device_id);
}

/* --- the Tensor userdata -------------------------------------------------- */

static int dlpack_prop(lua_State *L, pya_View *v, const char *k) {
  char s[48];
  if (pya__view_commonprop(L, v, k)) return 1;
  if (!strcmp(k, "device")) {
    pya__device_name(v->device, s, sizeof s);
    lua_pushstring(L, s);
  } else if (!strcmp(k, "strides")) pya__pushdims(L, v, 1, v->itemsize);
  else if (!strcmp(k, "byte_offset")) lua_pushinteger(L, (lua_Integer)v->byte_offset);
  else if (!strcmp(k, "device_type")) lua_pushinteger(L, v->device.device_type);
  else if (!strcmp(k, "device_id")) lua_pushinteger(L, v->device.device_id);
  else if (!strcmp(k, "format") && v->format[0]) lua_pushstring(L, v->format);
  else return 0;
  return 1;
}

static int dlpack_index(lua_State *L) {
  pya_View *v = pya__toview(L, 1);
  if (pya__view_fastget(L, v)) return 1;
  return pya__view_index(L, v, dlpack_prop);
}

PyObject *pya__tensor_topy(lua_State *L, int idx) {
  return pya__view_face(L, idx);
}

int luaopen_pyasync_dlpack(lua_State *L) {
  luaL_newmetatable(L, PYA_TENSOR);
  luaL_setfuncs(L, pya__view_meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, pya__view_methods, 0);
  lua_pushcclosure(L, dlpack_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "pyasync.Tensor");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_pushcfunction(L, dlpack_from_dlpack);
  lua_setfield(L, -2, "from_dlpack");
  return 0;
}
