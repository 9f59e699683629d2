/*
** view.c - the View record behind py.buffer, py.array and Tensors: shared
** refcounted memory, element types and their encoding, the Lua methods that
** Views and Tensors have in common (none takes the GIL to touch elements),
** and "pyasync.Array", the Python object that exports a View's memory.
*/
#include <limits.h>
#include <stdlib.h>

#include "buffer.h"

atomic_long pya__live_mems, pya__live_exports, pya__live_imports;

/* --- shared memory -------------------------------------------------------- */

pya_Mem *pya__mem_new(size_t nbytes) {
  if (nbytes > SIZE_MAX - PYA_MEM_HEADER) return NULL;
  /* calloc: a large block comes as fresh zero pages, untouched until used */
  pya_Mem *m = (pya_Mem *)calloc(1, PYA_MEM_HEADER + nbytes);
  if (!m) return NULL;
  atomic_init(&m->refs, 1);
  atomic_fetch_add(&pya__live_mems, 1);
  return m;
}

void pya__mem_retain(pya_Mem *m) {
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

/* The last holder frees the block; a Python owner is dropped now when the
** caller holds the GIL, else through the deferred list (never waits). */
void pya__mem_release(pya_Mem *m, int gil) {
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (m->owner && pya__rt.initialized) {
    if (gil == PYA_GIL_UNKNOWN)
      gil = PyGILState_Check() ? PYA_GIL_HELD : PYA_GIL_NOT_HELD;
    if (gil == PYA_GIL_HELD) Py_DECREF(m->owner);
    else pya__defer_decref(m->owner);
  }
  atomic_fetch_sub(&pya__live_mems, 1);
  free(m);
}

/* --- element types -------------------------------------------------------- */

#if LONG_MAX == INT64_MAX
#define FMT64 "l"
#define UFMT64 "L"
#else
#define FMT64 "q"
#define UFMT64 "Q"
#endif

static const struct {
  const char *name, *fmt;   /* dtype name, canonical struct format */
  uint8_t size, dlcode;
} types[PYA_T_COUNT] = {
  [PYA_T_NONE] = {"none", "", 0, 0},
  [PYA_T_I8] = {"int8", "b", 1, kDLInt}, [PYA_T_U8] = {"uint8", "B", 1, kDLUInt},
  [PYA_T_I16] = {"int16", "h", 2, kDLInt}, [PYA_T_U16] = {"uint16", "H", 2, kDLUInt},
  [PYA_T_I32] = {"int32", "i", 4, kDLInt}, [PYA_T_U32] = {"uint32", "I", 4, kDLUInt},
  [PYA_T_I64] = {"int64", FMT64, 8, kDLInt}, [PYA_T_U64] = {"uint64", UFMT64, 8, kDLUInt},
  [PYA_T_F16] = {"float16", "e", 2, kDLFloat}, [PYA_T_BF16] = {"bfloat16", "", 2, kDLBfloat},
  [PYA_T_F32] = {"float32", "f", 4, kDLFloat}, [PYA_T_F64] = {"float64", "d", 8, kDLFloat},
  [PYA_T_BOOL] = {"bool", "?", 1, PYA_kDLBool},
};

int pya__type_size(int type) { return types[type].size; }
const char *pya__type_format(int type) { return types[type].fmt; }

DLDataType pya__type_dl(int type) {
  DLDataType t = {types[type].dlcode, (uint8_t)(types[type].size * 8), 1};
  return t;
}

int pya__type_fromdl(DLDataType t) {
  if (t.lanes != 1) return PYA_T_NONE;
  for (int i = 1; i < PYA_T_COUNT; i++)
    if (types[i].dlcode == t.code && types[i].size * 8 == t.bits) return i;
  return PYA_T_NONE;
}

int pya__type_byname(const char *name) {
  for (int i = 1; i < PYA_T_COUNT; i++)
    if (strcmp(types[i].name, name) == 0) return i;
  return PYA_T_NONE;
}

/* Struct codes: class (s/u signed or unsigned integer, f float, ? bool),
** native size, standard size (0: native only). */
static const struct { char code, cls; uint8_t native, std; } codes[] = {
  {'b', 's', 1, 1}, {'B', 'u', 1, 1}, {'h', 's', 2, 2}, {'H', 'u', 2, 2},
  {'i', 's', 4, 4}, {'I', 'u', 4, 4}, {'l', 's', sizeof(long), 4},
  {'L', 'u', sizeof(long), 4}, {'q', 's', 8, 8}, {'Q', 'u', 8, 8},
  {'n', 's', sizeof(Py_ssize_t), 0}, {'N', 'u', sizeof(size_t), 0},
  {'e', 'f', 2, 2}, {'f', 'f', 4, 4}, {'d', 'f', 8, 8}, {'?', '?', 1, 1},
};

static int type_of(char cls, int size) {
  static const int ints[] = {0, PYA_T_I8, PYA_T_I16, 0, PYA_T_I32, 0, 0, 0, PYA_T_I64};
  static const int uints[] = {0, PYA_T_U8, PYA_T_U16, 0, PYA_T_U32, 0, 0, 0, PYA_T_U64};
  if (size < 1 || size > 8) return PYA_T_NONE;
  switch (cls) {
    case 's': return ints[size];
    case 'u': return uints[size];
    case 'f': return size == 2 ? PYA_T_F16 : size == 4 ? PYA_T_F32 : size == 8 ? PYA_T_F64 : 0;
    default: return size == 1 ? PYA_T_BOOL : PYA_T_NONE;
  }
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define IS_STD_NATIVE(c) ((c) == '=' || (c) == '>' || (c) == '!')
#else
#define IS_STD_NATIVE(c) ((c) == '=' || (c) == '<')
#endif

/* One element code with an optional native byte-order prefix; the size must
** match itemsize (unless itemsize < 0). */
int pya__parse_format(const char *fmt, Py_ssize_t itemsize) {
  const char *f = fmt ? fmt : "B";  /* PEP 3118: no format means bytes */
  int native = 1;
  if (*f == '@') f++;
  else if (IS_STD_NATIVE(*f)) { native = 0; f++; }
  if (!f[0] || f[1]) return PYA_T_NONE;
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    if (codes[i].code != f[0]) continue;
    int size = native ? codes[i].native : codes[i].std;
    if (!size || (itemsize >= 0 && itemsize != size)) return PYA_T_NONE;
    return type_of(codes[i].cls, size);
  }
  return PYA_T_NONE;
}

/* --- names ---------------------------------------------------------------- */

void pya__dtype_name(DLDataType t, char *buf, size_t n) {
  static const char *const cls[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  if (t.code == PYA_kDLBool && t.bits == 8 && t.lanes == 1) { snprintf(buf, n, "bool"); return; }
  if (t.code < sizeof cls / sizeof cls[0]) snprintf(buf, n, "%s%d", cls[t.code], t.bits);
  else snprintf(buf, n, "code%d_%d", t.code, t.bits);
  if (t.lanes != 1) {
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "x%d", t.lanes);
  }
}

/* "cpu", "cuda:0", "cuda_host" ...: torch's names where it has them. */
void pya__device_name(DLDevice d, char *buf, size_t n) {
  static const char *const names[] = {
    [kDLCPU] = "cpu", [kDLCUDA] = "cuda", [kDLCUDAHost] = "cuda_host",
    [kDLOpenCL] = "opencl", [kDLVulkan] = "vulkan", [kDLMetal] = "metal",
    [kDLVPI] = "vpi", [kDLROCM] = "rocm", [kDLROCMHost] = "rocm_host",
    [kDLExtDev] = "ext_dev", [kDLCUDAManaged] = "cuda_managed",
    [14] = "oneapi", [15] = "webgpu", [16] = "hexagon"};
  int t = (int)d.device_type;
  const char *name = t > 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : NULL;
  if (!name) snprintf(buf, n, "device%d:%d", t, d.device_id);
  else if (t == kDLCPU || t == kDLCUDAHost || t == kDLROCMHost) snprintf(buf, n, "%s", name);
  else snprintf(buf, n, "%s:%d", name, d.device_id);
}

static const char *kindname(const pya_View *v) {
  return v->kind == PYA_KIND_TENSOR ? "Tensor" : "View";
}

/* --- half floats ---------------------------------------------------------- */

double pya__f16_to_double(uint16_t h) {
  uint64_t sign = (uint64_t)(h >> 15) << 63;
  int exp = (h >> 10) & 0x1f;
  uint64_t man = h & 0x3ff, bits;
  double d;
  if (exp == 0) {           /* zero or subnormal: man * 2^-24, exact */
    d = (double)man * 5.9604644775390625e-08;
    return sign ? -d : d;
  }
  if (exp == 31) bits = sign | 0x7ff0000000000000ull | (man << 42);
  else bits = sign | ((uint64_t)(exp - 15 + 1023) << 52) | (man << 42);
  memcpy(&d, &bits, 8);
  return d;
}

/* Rounds to nearest, ties to even, straight from the double (no double
** rounding through float). */
static uint16_t double_to_f16(double d) {
  uint64_t x;
  memcpy(&x, &d, 8);
  uint16_t sign = (uint16_t)((x >> 48) & 0x8000);
  int exp = (int)((x >> 52) & 0x7ff);
  uint64_t man = x & 0xfffffffffffffull;
  if (exp == 0x7ff) return sign | 0x7c00 | (man ? 0x200 : 0);
  int e = exp - 1023 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e < -10) return sign;
  int shift = 42;
  if (e <= 0) { man |= 1ull << 52; shift += 1 - e; e = 0; }
  uint64_t h = man >> shift, rem = man & ((1ull << shift) - 1);
  uint64_t half = 1ull << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) h++;  /* a carry bumps the exponent */
  return (uint16_t)(sign | (((uint64_t)e << 10) + h));
}

static uint16_t double_to_bf16(double d) {
  float f = (float)d;
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);  /* NaN */
  return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* --- storing Lua values --------------------------------------------------- */

static const struct { lua_Integer min, max; } ranges[PYA_T_COUNT] = {
  [PYA_T_I8] = {INT8_MIN, INT8_MAX}, [PYA_T_U8] = {0, UINT8_MAX},
  [PYA_T_I16] = {INT16_MIN, INT16_MAX}, [PYA_T_U16] = {0, UINT16_MAX},
  [PYA_T_I32] = {INT32_MIN, INT32_MAX}, [PYA_T_U32] = {0, UINT32_MAX},
  [PYA_T_I64] = {LUA_MININTEGER, LUA_MAXINTEGER}, [PYA_T_U64] = {0, LUA_MAXINTEGER},
};

static const char *encode_float(lua_State *L, int type, int idx, char *out) {
  double d = (double)lua_tonumber(L, idx);
  if (type == PYA_T_F64) memcpy(out, &d, 8);
  else if (type == PYA_T_F32) { float f = (float)d; memcpy(out, &f, 4); }
  else {
    uint16_t h = type == PYA_T_F16 ? double_to_f16(d) : double_to_bf16(d);
    memcpy(out, &h, 2);
  }
  return NULL;
}

/* A uint64 element takes the floats 2^63 <= d < 2^64 that Lua integers miss. */
static int big_u64(lua_State *L, int idx, char *out) {
  if (lua_isinteger(L, idx)) return 0;
  double d = (double)lua_tonumber(L, idx);
  if (!(d >= 9223372036854775808.0 && d < 18446744073709551616.0)) return 0;
  uint64_t u = (uint64_t)d;
  if ((double)u != d) return 0;
  memcpy(out, &u, 8);
  return 1;
}

/* Encodes the Lua value at idx as an element of type into out; returns
** NULL or why it does not fit. */
const char *pya__encode(lua_State *L, int type, int idx, char *out) {
  int t = lua_type(L, idx);
  if (type == PYA_T_BOOL) {
    if (t != LUA_TBOOLEAN) return "boolean expected";
    out[0] = (char)lua_toboolean(L, idx);
    return NULL;
  }
  if (t != LUA_TNUMBER) return "number expected";
  if (type >= PYA_T_F16 && type <= PYA_T_F64) return encode_float(L, type, idx, out);
  if (type == PYA_T_U64 && big_u64(L, idx, out)) return NULL;
  int isint;
  lua_Integer i = lua_tointegerx(L, idx, &isint);
  if (!isint) return "number has no integer representation";
  if (i < ranges[type].min || i > ranges[type].max) return "out of range";
  switch (types[type].size) {
    case 1: { int8_t x = (int8_t)i; memcpy(out, &x, 1); break; }
    case 2: { int16_t x = (int16_t)i; memcpy(out, &x, 2); break; }
    case 4: { int32_t x = (int32_t)i; memcpy(out, &x, 4); break; }
    default: { int64_t x = (int64_t)i; memcpy(out, &x, 8); break; }
  }
  return NULL;
}

static int store_error(lua_State *L, int type, int idx, const char *why) {
  const char *what = lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL)
                                                     : luaL_typename(L, idx);
  return luaL_error(L, "cannot store %s in a %s element: %s", what,
                    types[type].name, why);
}

static void store(lua_State *L, const pya_View *v, char *p, int idx) {
  char tmp[8];
  const char *why = pya__encode(L, v->type, idx, tmp);
  if (why) store_error(L, v->type, idx, why);
  memcpy(p, tmp, (size_t)v->itemsize);
}

/* --- the View record ------------------------------------------------------ */

pya_View *pya__view_new(lua_State *L, const char *tname) {
  pya_View *v = (pya_View *)lua_newuserdatauv(L, sizeof *v, 0);
  memset(v, 0, sizeof *v);
  v->magic = PYA_VIEW_MAGIC;
  v->shape = v->inl;
  v->strides = v->inl + PYA_INLINE_DIMS;
  luaL_setmetatable(L, tname);
  return v;
}

pya_View *pya__toview(lua_State *L, int idx) {
  pya_View *v = (pya_View *)lua_touserdata(L, idx);
  if (v && lua_rawlen(L, idx) == sizeof *v && v->magic == PYA_VIEW_MAGIC) return v;
  return NULL;
}

static void freedims(pya_View *v) {
  if (v->shape && v->shape != v->inl) free(v->shape);
  v->shape = v->inl;
  v->strides = v->inl + PYA_INLINE_DIMS;
}

int pya__view_dims(pya_View *v, int ndim) {
  freedims(v);
  if (ndim > PYA_INLINE_DIMS) {
    Py_ssize_t *d = (Py_ssize_t *)malloc(2 * (size_t)ndim * sizeof *d);
    if (!d) return 0;
    v->shape = d;
    v->strides = d + ndim;
  }
  v->ndim = ndim;
  return 1;
}

/* Counts the elements (refusing sizes that overflow) and arms the fast path. */
int pya__view_finish(pya_View *v) {
  Py_ssize_t n = 1;
  for (int d = 0; d < v->ndim; d++) {
    Py_ssize_t s = v->shape[d];
    if (s < 0 || (s && n > PY_SSIZE_T_MAX / s)) return 0;
    n *= s;
  }
  if (v->itemsize < 0 || (v->itemsize && n > PY_SSIZE_T_MAX / v->itemsize)) return 0;
  v->nelem = n;
  int fast = v->data && v->mem && v->type != PYA_T_NONE && v->ndim == 1;
  v->n0 = fast ? v->shape[0] : 0;
  v->s0 = fast ? v->strides[0] : 0;
  return 1;
}

static int ccontig(const pya_View *v) {
  Py_ssize_t want = v->itemsize;
  if (v->nelem == 0) return 1;
  for (int d = v->ndim - 1; d >= 0; d--) {
    if (v->shape[d] != 1 && v->strides[d] != want) return 0;
    want *= v->shape[d];
  }
  return 1;
}

static int fcontig(const pya_View *v) {
  Py_ssize_t want = v->itemsize;
  if (v->nelem == 0) return 1;
  for (int d = 0; d < v->ndim; d++) {
    if (v->shape[d] != 1 && v->strides[d] != want) return 0;
    want *= v->shape[d];
  }
  return 1;
}

/* Calls fn on each row along the last dimension (the whole view at once
** when it is C-contiguous). */
typedef void (*rowfn)(char *p, Py_ssize_t n, Py_ssize_t stride, int size, void *ud);

static void walk(const pya_View *v, rowfn fn, void *ud) {
  if (v->nelem == 0) return;
  if (ccontig(v)) { fn(v->data, v->nelem, v->itemsize, v->itemsize, ud); return; }
  int last = v->ndim - 1;
  Py_ssize_t idx[PYA_MAX_DIMS] = {0};
  char *p = v->data;
  for (;;) {
    fn(p, v->shape[last], v->strides[last], v->itemsize, ud);
    int d = last - 1;
    for (; d >= 0; d--) {
      if (++idx[d] < v->shape[d]) { p += v->strides[d]; break; }
      p -= (idx[d] - 1) * v->strides[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

/* --- checks --------------------------------------------------------------- */

static pya_View *live(lua_State *L, int idx) {
  pya_View *v = pya__toview(L, idx);
  if (!v) luaL_typeerror(L, idx, "View or Tensor");
  if (!v->mem) luaL_error(L, "released %s", kindname(v));
  if (v->pyowned && !pya__rt.initialized) luaL_error(L, "Python has been finalized");
  return v;
}

/* A live View whose bytes Lua can read. */
static pya_View *readable(lua_State *L, int idx) {
  pya_View *v = live(L, idx);
  if (!v->data) {
    char dev[48];
    pya__device_name(v->device, dev, sizeof dev);
    luaL_error(L, "Tensor on device %s: its memory cannot be accessed from Lua", dev);
  }
  return v;
}

/* A live View whose elements Lua can read. */
static pya_View *indexable(lua_State *L, int idx) {
  pya_View *v = readable(L, idx);
  if (v->type == PYA_T_NONE) {
    char dt[48];
    pya__dtype_name(v->dtype, dt, sizeof dt);
    luaL_error(L, "%s of dtype %s cannot be indexed from Lua", kindname(v), dt);
  }
  return v;
}

static void writable(lua_State *L, pya_View *v) {
  if (v->readonly) luaL_error(L, "read-only %s: cannot write", kindname(v));
}

static lua_Integer index_arg(lua_State *L, int idx) {
  int ok = 0;
  lua_Integer i = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &ok) : 0;
  if (!ok) luaL_error(L, "index must be an integer, got %s",
                      lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL)
                                                      : luaL_typename(L, idx));
  return i;
}

static int range_error(lua_State *L, const pya_View *v, int d, lua_Integer i) {
  if (v->ndim == 1)
    return luaL_error(L, "index %I out of range (1..%I)", i, (lua_Integer)v->shape[0]);
  return luaL_error(L, "index %I out of range for dimension %d (1..%I)", i, d + 1,
                    (lua_Integer)v->shape[d]);
}

/* The address of the element whose 1-based indexes are at [first, first+n). */
static char *locate(lua_State *L, const pya_View *v, int first, int n) {
  if (n != v->ndim)
    luaL_error(L, "%s has %d dimension%s: %d index%s expected, got %d",
               kindname(v), v->ndim, v->ndim == 1 ? "" : "s", v->ndim,
               v->ndim == 1 ? "" : "es", n);
  char *p = v->data;
  for (int d = 0; d < n; d++) {
    lua_Integer i = index_arg(L, first + d);
    if (i < 1 || i > v->shape[d]) range_error(L, v, d, i);
    p += (Py_ssize_t)(i - 1) * v->strides[d];
  }
  return p;
}

/* --- Lua methods ---------------------------------------------------------- */

static int view_get(lua_State *L) {
  pya_View *v = indexable(L, 1);
  pya__pushelem(L, v->type, locate(L, v, 2, lua_gettop(L) - 1));
  return 1;
}

static int view_set(lua_State *L) {
  pya_View *v = indexable(L, 1);
  int top = lua_gettop(L);
  writable(L, v);
  if (top < 2) return luaL_error(L, "%s:set: value expected", kindname(v));
  store(L, v, locate(L, v, 2, top - 2), top);
  return 0;
}

static void fill_row(char *p, Py_ssize_t n, Py_ssize_t stride, int size, void *ud) {
  const char *x = (const char *)ud;
  if (size == 1 && stride == 1) { memset(p, x[0], (size_t)n); return; }
  switch (size) {  /* constant sizes: memcpy becomes one store */
    case 2: for (Py_ssize_t i = 0; i < n; i++) memcpy(p + i * stride, x, 2); break;
    case 4: for (Py_ssize_t i = 0; i < n; i++) memcpy(p + i * stride, x, 4); break;
    case 8: for (Py_ssize_t i = 0; i < n; i++) memcpy(p + i * stride, x, 8); break;
    default: for (Py_ssize_t i = 0; i < n; i++) memcpy(p + i * stride, x, (size_t)size);
  }
}

static int view_fill(lua_State *L) {
  pya_View *v = indexable(L, 1);
  char tmp[8];
  writable(L, v);
  luaL_checkany(L, 2);
  const char *why = pya__encode(L, v->type, 2, tmp);
  if (why) store_error(L, v->type, 2, why);
  walk(v, fill_row, tmp);
  return 0;
}

static void copy_row(char *p, Py_ssize_t n, Py_ssize_t stride, int size, void *ud) {
  char **out = (char **)ud;
  if (stride == size) { memcpy(*out, p, (size_t)(n * size)); *out += n * size; return; }
  for (Py_ssize_t i = 0; i < n; i++, *out += size) memcpy(*out, p + i * stride, (size_t)size);
}

/* The elements in C order, as memoryview.tobytes() gives them. */
static int view_tobytes(lua_State *L) {
  pya_View *v = readable(L, 1);
  size_t n = (size_t)(v->nelem * v->itemsize);
  if (ccontig(v)) { lua_pushlstring(L, v->data, n); return 1; }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, n);
  walk(v, copy_row, &out);
  luaL_pushresultsize(&b, n);
  return 1;
}

static void totable(lua_State *L, const pya_View *v, int d, const char *p) {
  luaL_checkstack(L, 3, "too many dimensions");
  lua_createtable(L, (int)(v->shape[d] < INT_MAX ? v->shape[d] : 0), 0);
  for (Py_ssize_t i = 0; i < v->shape[d]; i++) {
    const char *q = p + i * v->strides[d];
    if (d + 1 < v->ndim) totable(L, v, d + 1, q);
    else pya__pushelem(L, v->type, q);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Nested Lua tables (the element itself for a 0-D View). */
static int view_totable(lua_State *L) {
  pya_View *v = indexable(L, 1);
  if (v->ndim == 0) pya__pushelem(L, v->type, v->data);
  else totable(L, v, 0, v->data);
  return 1;
}

static int view_ptr(lua_State *L) {
  pya_View *v = live(L, 1);
  lua_pushlightuserdata(L, v->base);
  return 1;
}

/* Drops Lua's hold now; the memory lives on while Python still uses it. */
static int view_release(lua_State *L) {
  pya_View *v = pya__toview(L, 1);
  if (!v) {
    if (lua_isnoneornil(L, 1)) return 0;
    return luaL_typeerror(L, 1, "View or Tensor");
  }
  pya_Mem *m = v->mem;
  PyObject *o = v->pyobj;
  v->mem = NULL;
  v->pyobj = NULL;
  v->data = NULL;
  v->n0 = 0;
  if (!pya__rt.initialized || (!o && !(m && m->owner))) {
    pya__mem_release(m, PYA_GIL_NOT_HELD);  /* Lua-owned memory: no Python */
    return 0;
  }
  int took = pya__gil_enter(L);
  Py_XDECREF(o);
  pya__mem_release(m, PYA_GIL_HELD);
  pya__gil_leave(took);
  return 0;
}

/* Never waits for the GIL: Python references go to the deferred list. */
static int view_gc(lua_State *L) {
  pya_View *v = pya__toview(L, 1);
  if (!v) return 0;
  if (v->pyobj && pya__rt.initialized) pya__defer_decref(v->pyobj);
  pya__mem_release(v->mem, PYA_GIL_NOT_HELD);
  v->pyobj = NULL;
  v->mem = NULL;
  v->data = NULL;
  v->n0 = 0;
  freedims(v);
  return 0;
}

static int view_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)live(L, 1)->nelem);
  return 1;
}

static int view_tostring(lua_State *L) {
  pya_View *v = pya__toview(L, 1);
  if (!v) return luaL_typeerror(L, 1, "View or Tensor");
  if (!v->mem) { lua_pushfstring(L, "pyasync.%s (released)", kindname(v)); return 1; }
  luaL_Buffer b;
  char s[48];
  luaL_buffinit(L, &b);
  if (v->kind == PYA_KIND_TENSOR) pya__dtype_name(v->dtype, s, sizeof s);
  else snprintf(s, sizeof s, "%s", v->format);
  lua_pushfstring(L, "pyasync.%s(%s, ", kindname(v), s);
  luaL_addvalue(&b);
  for (int d = 0; d < v->ndim; d++) {
    lua_pushfstring(L, d ? "x%I" : "%I", (lua_Integer)v->shape[d]);
    luaL_addvalue(&b);
  }
  if (v->ndim == 0) luaL_addstring(&b, "scalar");
  if (v->kind == PYA_KIND_TENSOR) pya__device_name(v->device, s, sizeof s);
  luaL_addstring(&b, v->kind == PYA_KIND_TENSOR ? ", " : "");
  luaL_addstring(&b, v->kind == PYA_KIND_TENSOR ? s : "");
  luaL_addstring(&b, v->readonly ? ", read-only)" : ")");
  luaL_pushresult(&b);
  return 1;
}

/* --- indexing: the slow paths behind pya__view_fastget -------------------- */

void pya__pushdims(lua_State *L, const pya_View *v, int strides, int div) {
  const Py_ssize_t *a = strides ? v->strides : v->shape;
  lua_createtable(L, v->ndim, 0);
  for (int d = 0; d < v->ndim; d++) {
    lua_pushinteger(L, (lua_Integer)(a[d] / (div ? div : 1)));
    lua_rawseti(L, -2, d + 1);
  }
}

int pya__view_commonprop(lua_State *L, pya_View *v, const char *k) {
  char s[48];
  if (!strcmp(k, "ndim")) lua_pushinteger(L, v->ndim);
  else if (!strcmp(k, "shape")) pya__pushdims(L, v, 0, 1);
  else if (!strcmp(k, "itemsize")) lua_pushinteger(L, v->itemsize);
  else if (!strcmp(k, "nbytes")) lua_pushinteger(L, (lua_Integer)(v->nelem * v->itemsize));
  else if (!strcmp(k, "readonly")) lua_pushboolean(L, v->readonly);
  else if (!strcmp(k, "dtype")) {
    pya__dtype_name(v->dtype, s, sizeof s);
    lua_pushstring(L, s);
  } else return 0;
  return 1;
}

/* v[k] when the fast path declined: a float key such as 2.0, or an error. */
static char *locate1(lua_State *L, const pya_View *v, const char *meth) {
  if (v->ndim != 1)
    luaL_error(L, "%s[i] needs a 1-D %s (this one has %d dimensions): use :%s(...)",
               kindname(v), kindname(v), v->ndim, meth);
  return locate(L, v, 2, 1);
}

/* __index after the fast path: methods (upvalue 1), then properties, then
** the errors an integer key deserves. */
int pya__view_index(lua_State *L, pya_View *v,
                    int (*prop)(lua_State *L, pya_View *v, const char *k)) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    v = live(L, 1);
    if (!prop(L, v, lua_tostring(L, 2))) lua_pushnil(L);
    return 1;
  }
  v = indexable(L, 1);
  if (v->ndim != 1) index_arg(L, 2);  /* a bad key says so first */
  pya__pushelem(L, v->type, locate1(L, v, "get"));
  return 1;
}

static int view_newindex(lua_State *L) {
  pya_View *v = pya__toview(L, 1);
  if (v && lua_isinteger(L, 2) && !v->readonly) {
    lua_Unsigned i = (lua_Unsigned)lua_tointeger(L, 2) - 1;
    if (i < (lua_Unsigned)v->n0 && (!v->pyowned || pya__rt.initialized)) {
      store(L, v, v->data + (Py_ssize_t)i * v->s0, 3);
      return 0;
    }
  }
  if (v && lua_type(L, 2) == LUA_TSTRING)
    return luaL_error(L, "cannot set field '%s' of a %s", lua_tostring(L, 2),
                      kindname(v));
  v = indexable(L, 1);
  writable(L, v);
  if (v->ndim != 1) index_arg(L, 2);
  store(L, v, locate1(L, v, "set"), 3);
  return 0;
}

const luaL_Reg pya__view_methods[] = {
  {"get", view_get}, {"set", view_set}, {"fill", view_fill},
  {"tobytes", view_tobytes}, {"totable", view_totable}, {"ptr", view_ptr},
  {"release", view_release}, {NULL, NULL}};

const luaL_Reg pya__view_meta[] = {
  {"__newindex", view_newindex}, {"__len", view_len},
  {"__gc", view_gc}, {"__close", view_release},
  {"__tostring", view_tostring}, {NULL, NULL}};

/* --- the Python face: "pyasync.Array" ---------------------------------------
** A copy of the View holding its own reference on the memory, so Python
** keeps the memory alive after Lua lets go, and the other way round. */

typedef struct {
  PyObject_HEAD
  pya_View *v;
} pya_Export;

static PyTypeObject *export_type;

static pya_View *clone(const pya_View *src) {
  pya_View *c = (pya_View *)malloc(sizeof *c);
  if (!c) return NULL;
  *c = *src;
  c->pyobj = NULL;
  c->shape = NULL;
  if (!pya__view_dims(c, src->ndim)) { free(c); return NULL; }
  memcpy(c->shape, src->shape, (size_t)src->ndim * sizeof *c->shape);
  memcpy(c->strides, src->strides, (size_t)src->ndim * sizeof *c->strides);
  pya__mem_retain(c->mem);
  return c;
}

static PyObject *export_new(const pya_View *v) {
  pya_View *c = clone(v);
  if (!c) return PyErr_NoMemory();
  pya_Export *e = PyObject_New(pya_Export, export_type);
  if (!e) {
    pya__mem_release(c->mem, PYA_GIL_HELD);
    freedims(c);
    free(c);
    return NULL;
  }
  e->v = c;
  return (PyObject *)e;
}

static void export_dealloc(PyObject *self) {
  pya_View *v = ((pya_Export *)self)->v;
  PyTypeObject *tp = Py_TYPE(self);
  if (v) {
    pya__mem_release(v->mem, PYA_GIL_HELD);
    freedims(v);
    free(v);
  }
  tp->tp_free(self);
  Py_DECREF(tp);
}

static int buffer_refused(const char *why, const pya_View *v) {
  char s[48];
  if (v->data) pya__dtype_name(v->dtype, s, sizeof s);
  else pya__device_name(v->device, s, sizeof s);
  PyErr_Format(PyExc_BufferError, why, s);
  return -1;
}

/* The buffer protocol over the same memory, honouring what the consumer
** asked for (contiguity, strides, format). */
static int export_getbuffer(PyObject *self, Py_buffer *b, int flags) {
  const pya_View *v = ((pya_Export *)self)->v;
  int c = ccontig(v), f = fcontig(v);
  if (!v->data) return buffer_refused("memory on device %s is not CPU memory", v);
  if (!types[v->type].fmt[0]) return buffer_refused("no buffer format for dtype %s", v);
  if ((flags & PyBUF_WRITABLE) && v->readonly) return buffer_refused("read-only %s", v);
  if (((flags & PyBUF_C_CONTIGUOUS) == PyBUF_C_CONTIGUOUS && !c) ||
      ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS && !f) ||
      ((flags & PyBUF_ANY_CONTIGUOUS) == PyBUF_ANY_CONTIGUOUS && !c && !f) ||
      ((flags & PyBUF_STRIDES) != PyBUF_STRIDES && !c)) {
    PyErr_SetString(PyExc_BufferError, "memory is not contiguous as requested");
    return -1;
  }
  b->buf = v->data;
  b->obj = Py_NewRef(self);
  b->len = v->nelem * v->itemsize;
  b->readonly = v->readonly;
  b->itemsize = v->itemsize;
  b->format = (flags & PyBUF_FORMAT) ? (char *)types[v->type].fmt : NULL;
  b->ndim = (flags & PyBUF_ND) == PyBUF_ND ? v->ndim : 1;
  b->shape = (flags & PyBUF_ND) == PyBUF_ND ? v->shape : NULL;
  b->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? v->strides : NULL;
  b->suboffsets = NULL;
  b->internal = NULL;
  return 0;
}

static PyObject *export_dlpack(PyObject *self, PyObject *args, PyObject *kw) {
  return pya__dlpack_capsule(((pya_Export *)self)->v, args, kw);
}

static PyObject *export_dlpack_device(PyObject *self, PyObject *unused) {
  (void)unused;
  return pya__dlpack_device(((pya_Export *)self)->v);
}

static PyObject *export_repr(PyObject *self) {
  const pya_View *v = ((pya_Export *)self)->v;
  char dt[48], dev[48];
  pya__dtype_name(v->dtype, dt, sizeof dt);
  pya__device_name(v->device, dev, sizeof dev);
  PyObject *shape = PyTuple_New(v->ndim);
  for (int d = 0; shape && d < v->ndim; d++) {
    PyObject *n = PyLong_FromSsize_t(v->shape[d]);
    if (!n) { Py_CLEAR(shape); break; }
    PyTuple_SET_ITEM(shape, d, n);
  }
  if (!shape) return NULL;
  PyObject *r = PyUnicode_FromFormat("<pyasync.Array %s %R on %s>", dt, shape, dev);
  Py_DECREF(shape);
  return r;
}

static PyMethodDef export_methods[] = {
  {"__dlpack__", (PyCFunction)(void (*)(void))export_dlpack, METH_VARARGS | METH_KEYWORDS,
   "A DLPack capsule sharing this memory."},
  {"__dlpack_device__", export_dlpack_device, METH_NOARGS,
   "(device_type, device_id) as DLPack numbers them."},
  {NULL, NULL, 0, NULL}};

static PyType_Slot export_slots[] = {
  {Py_tp_dealloc, export_dealloc}, {Py_tp_repr, export_repr},
  {Py_tp_methods, export_methods}, {Py_bf_getbuffer, export_getbuffer},
  {Py_tp_doc, "Memory of a pyasync View, py.array or Tensor, shared with Lua."},
  {0, NULL}};

static PyType_Spec export_spec = {
  "pyasync.Array", sizeof(pya_Export), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, export_slots};

/* GIL held.  The type lives in the helper module (one per interpreter), so
** a Python finalized and started again gets a fresh one. */
int pya__export_init(void) {
  PyObject *t = PyObject_GetAttrString(pya__rt.helper, "Array");
  if (t && PyType_Check(t) && ((PyTypeObject *)t)->tp_dealloc == export_dealloc) {
    export_type = (PyTypeObject *)t;  /* keeps the reference */
    return 0;
  }
  Py_XDECREF(t);
  PyErr_Clear();
  t = PyType_FromSpec(&export_spec);
  if (!t || PyObject_SetAttrString(pya__rt.helper, "Array", t) < 0) {
    Py_XDECREF(t);
    return -1;
  }
  export_type = (PyTypeObject *)t;
  return 0;
}

/* GIL held: py.buffer's object itself, else a (cached) pyasync.Array. */
PyObject *pya__view_face(lua_State *L, int idx) {
  pya_View *v = pya__toview(L, idx);
  if (!v || !v->mem) {
    PyErr_Format(PyExc_ValueError, "released %s", v ? kindname(v) : "View");
    return NULL;
  }
  if (!v->pyobj) v->pyobj = export_new(v);
  Py_XINCREF(v->pyobj);
  return v->pyobj;
}
