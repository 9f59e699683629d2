/*
** buffer.h - what view.c, buffer.c and dlpack.c share: the View record
** behind py.buffer, py.array and Tensors, the refcounted memory blocks they
** share with Python, and the element access that runs without the GIL.
*/
#ifndef PYASYNC_BUFFER_H
#define PYASYNC_BUFFER_H

#include <string.h>
#include <dlpack/dlpack.h>

#include "pyasync_int.h"

/* Element types Lua can read and write; PYA_T_NONE: not indexable. */
enum {
  PYA_T_NONE, PYA_T_I8, PYA_T_U8, PYA_T_I16, PYA_T_U16, PYA_T_I32,
  PYA_T_U32, PYA_T_I64, PYA_T_U64, PYA_T_F16, PYA_T_BF16, PYA_T_F32,
  PYA_T_F64, PYA_T_BOOL, PYA_T_COUNT
};

enum { PYA_KIND_BUFFER = 1, PYA_KIND_ARRAY, PYA_KIND_TENSOR };

#define PYA_VIEW_MAGIC 0x50795677u
#define PYA_INLINE_DIMS 4
#define PYA_MAX_DIMS 64
#define PYA_kDLBool 6          /* DLPack 0.8's kDLBool; our header is 0.6 */

/* --- shared memory (view.c) ------------------------------------------------
** One block of memory with an atomic refcount, held by Lua userdata, by
** Python exports and by DLPack consumers; whichever drops last frees it. */
typedef struct pya_Mem {
  atomic_long refs;
  PyObject *owner;    /* keeps foreign memory alive; NULL: bytes follow */
} pya_Mem;
#define PYA_MEM_HEADER 64  /* own bytes start here: 16-byte aligned */

/* How a release may treat the GIL. */
enum { PYA_GIL_HELD, PYA_GIL_NOT_HELD, PYA_GIL_UNKNOWN };

pya_Mem *pya__mem_new(size_t nbytes);   /* zeroed; NULL if out of memory */
void pya__mem_retain(pya_Mem *m);
void pya__mem_release(pya_Mem *m, int gil);
static inline char *pya__mem_data(pya_Mem *m) {
  return (char *)m + PYA_MEM_HEADER;
}
extern atomic_long pya__live_mems, pya__live_exports, pya__live_imports;

/* --- the View record ------------------------------------------------------
** A Lua userdata (metatable PYA_VIEW or PYA_TENSOR), or a malloc'd copy
** inside a Python export.  n0/s0 make the 1-D fast path one comparison:
** n0 is 0 whenever that path must not run (released, not CPU memory,
** unsupported type, not 1-D, write to read-only is checked apart). */
typedef struct pya_View {
  uint32_t magic;
  uint8_t type, kind, readonly, pyowned;
  Py_ssize_t n0, s0;
  char *data;                  /* element (1, ..., 1); NULL if not readable */
  int ndim, itemsize;
  Py_ssize_t nelem;
  Py_ssize_t *shape, *strides; /* strides in bytes */
  pya_Mem *mem;                /* NULL once released */
  PyObject *pyobj;             /* Python face: py.buffer's object, or export */
  void *base;                  /* DLPack data pointer (ptr()) */
  uint64_t byte_offset;
  DLDevice device;
  DLDataType dtype;
  char format[12];
  Py_ssize_t inl[2 * PYA_INLINE_DIMS];
} pya_View;

/* New zeroed View userdata with the metatable tname (allocates; no GIL). */
pya_View *pya__view_new(lua_State *L, const char *tname);
pya_View *pya__toview(lua_State *L, int idx);
/* Sets the dims storage for ndim (0 on no memory). */
int pya__view_dims(pya_View *v, int ndim);
/* After shape/strides/type are set: nelem and the fast path; 0 on overflow. */
int pya__view_finish(pya_View *v);

/* Element types. */
int pya__type_size(int type);
const char *pya__type_format(int type);    /* struct format, "" if none */
int pya__type_byname(const char *name);    /* "float32" -> PYA_T_F32 */
DLDataType pya__type_dl(int type);
int pya__type_fromdl(DLDataType t);
/* Type of a struct format; itemsize < 0 takes the format's own size. */
int pya__parse_format(const char *fmt, Py_ssize_t itemsize);

/* Names: "float32", "bool", "complex64"; "cpu", "cuda:0", "cuda_host". */
void pya__dtype_name(DLDataType t, char *buf, size_t n);
void pya__device_name(DLDevice d, char *buf, size_t n);

/* Lua methods (get, set, ...) and metamethods (all but __index) shared by
** Views and Tensors. */
extern const luaL_Reg pya__view_methods[];
extern const luaL_Reg pya__view_meta[];
int pya__view_index(lua_State *L, pya_View *v,
                    int (*prop)(lua_State *L, pya_View *v, const char *k));
int pya__view_commonprop(lua_State *L, pya_View *v, const char *k);
void pya__pushdims(lua_State *L, const pya_View *v, int strides, int div);

/* Python side (GIL held): the object handed to Python for a View or a
** Tensor (new ref or NULL with an exception), and the type behind it. */
PyObject *pya__view_face(lua_State *L, int idx);
int pya__export_init(void);
/* DLPack producer (dlpack.c), used by the export type. */
PyObject *pya__dlpack_capsule(const pya_View *v, PyObject *args, PyObject *kw);
PyObject *pya__dlpack_device(const pya_View *v);

/* --- element access: no GIL, the memory is pinned ------------------------ */
double pya__f16_to_double(uint16_t h);
/* Encodes the Lua value at idx as an element; NULL or why it does not fit. */
const char *pya__encode(lua_State *L, int type, int idx, char *out);

/* Unaligned-safe loads (a buffer may hold misaligned elements). */
#define PYA_LOADER(name, T) \
  static inline T name(const char *p) { T x; memcpy(&x, p, sizeof x); return x; }
PYA_LOADER(pya__ld_i8, int8_t) PYA_LOADER(pya__ld_u8, uint8_t)
PYA_LOADER(pya__ld_i16, int16_t) PYA_LOADER(pya__ld_u16, uint16_t)
PYA_LOADER(pya__ld_i32, int32_t) PYA_LOADER(pya__ld_u32, uint32_t)
PYA_LOADER(pya__ld_i64, int64_t) PYA_LOADER(pya__ld_u64, uint64_t)
PYA_LOADER(pya__ld_f32, float) PYA_LOADER(pya__ld_f64, double)
#define PYA_LOAD(T, p) pya__ld_##T(p)

static inline void pya__pushelem(lua_State *L, int type, const char *p) {
  switch (type) {
    case PYA_T_I8: lua_pushinteger(L, PYA_LOAD(i8, p)); break;
    case PYA_T_U8: lua_pushinteger(L, PYA_LOAD(u8, p)); break;
    case PYA_T_I16: lua_pushinteger(L, PYA_LOAD(i16, p)); break;
    case PYA_T_U16: lua_pushinteger(L, PYA_LOAD(u16, p)); break;
    case PYA_T_I32: lua_pushinteger(L, PYA_LOAD(i32, p)); break;
    case PYA_T_U32: lua_pushinteger(L, PYA_LOAD(u32, p)); break;
    case PYA_T_I64: lua_pushinteger(L, PYA_LOAD(i64, p)); break;
    /* as string.unpack("J"): values from 2^63 wrap to negative integers */
    case PYA_T_U64: lua_pushinteger(L, (lua_Integer)PYA_LOAD(u64, p)); break;
    case PYA_T_F16: lua_pushnumber(L, pya__f16_to_double(PYA_LOAD(u16, p))); break;
    case PYA_T_BF16: {
      uint32_t u = (uint32_t)PYA_LOAD(u16, p) << 16;
      float f;
      memcpy(&f, &u, 4);
      lua_pushnumber(L, f);
      break;
    }
    case PYA_T_F32: lua_pushnumber(L, PYA_LOAD(f32, p)); break;
    case PYA_T_F64: lua_pushnumber(L, PYA_LOAD(f64, p)); break;
    case PYA_T_BOOL: lua_pushboolean(L, *p != 0); break;
    default: lua_pushnil(L);
  }
}

/* v[i] for 1-D views: no GIL, no checks beyond one comparison. */
static inline int pya__view_fastget(lua_State *L, pya_View *v) {
  if (!v || !lua_isinteger(L, 2)) return 0;
  lua_Unsigned i = (lua_Unsigned)lua_tointeger(L, 2) - 1;
  if (i >= (lua_Unsigned)v->n0 || (v->pyowned && !pya__rt.initialized))
    return 0;
  pya__pushelem(L, v->type, v->data + (Py_ssize_t)i * v->s0);
  return 1;
}

#endif
