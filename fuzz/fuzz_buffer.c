/*
** fuzz_buffer.c - libFuzzer target for py.buffer and py.array (API.md
** section 7): PEP 3118 layouts (format, itemsize, ndim, shape, strides,
** suboffsets, len) come from the input, from a C exporter that sizes its
** memory to exactly what its layout claims (so ASan catches any access past
** it), from memoryview casts and slices, and from py.array formats.  The
** driver then reads, writes, fills, copies and exports the View, and checks
** it against CPython's own memoryview of the same object.
*/
#include <string.h>

#include "harness.h"
#include "pyasync_int.h"

static const char DRIVER[] =
"local py = py\n"
"local B = {}\n"
"_G.B = B\n"
"py.exec([[\n"
"def _fz_ref(o):\n"
"    m = memoryview(o)\n"
"    def fix(x):\n"
"        if isinstance(x, list): return [fix(y) for y in x]\n"
"        if isinstance(x, int) and not isinstance(x, bool) and x >= 2**63: return x - 2**64\n"
"        return x\n"
"    try:\n"
"        return fix(m.tolist()), m.tobytes(), m.ndim\n"
"    finally:\n"
"        m.release()\n"
"def _fz_mv(fmt, shape, n, step):\n"
"    m = memoryview(bytearray(bytes(range(256)) * (n // 256 + 1))[:n])\n"
"    if shape is not None: return m.cast(fmt, shape)\n"
"    m = m.cast(fmt)\n"
"    return m[::step] if step else m\n"
"]])\n"
"local ref_of, make_mv = py.main._fz_ref, py.main._fz_mv\n"
"local fail, clean = fz_fail, fz_clean\n"
"local function eq(a, b)\n"
"  if type(a) == 'number' and type(b) == 'number' then\n"
"    return a == b or (a ~= a and b ~= b)\n"
"  end\n"
"  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
"  if #a ~= #b then return false end\n"
"  for i = 1, #a do if not eq(a[i], b[i]) then return false end end\n"
"  return true\n"
"end\n"
"local function product(t) local n = 1; for _, x in ipairs(t) do n = n * x end; return n end\n"
/* The values a write may try: right, wrong and extreme. */
"local VALUES = {0, 1, -1, 127, 128, 255, 256, -129, 65535, 1 << 31, 1 << 32,\n"
"  math.maxinteger, math.mininteger, 0.5, -0.0, 1e300, 1/0, -1/0, 0/0, 2.0^63,\n"
"  2.0^64 - 2048, true, false, 'x', '1', {}, py.None, 3.25, 65504.0, 1e-8}\n"
"local function value(op) return VALUES[op % #VALUES + 1] end\n"
"local function opat(ops, j) return #ops > 0 and ops[j % #ops + 1] or j end\n"
/* 1-based indexes: in range mostly, else off the edges or not integers. */
"local function index(op, n)\n"
"  local k = op % 16\n"
"  if k < 10 or n == 0 then return n > 0 and (op % n) + 1 or 1 end\n"
"  return ({0, n + 1, -1, math.maxinteger, 1.5, 'x'})[k - 9]\n"
"end\n"
"local function pick(ops, i, shape, extra)\n"
"  local idx = {}\n"
"  local n = #shape + extra\n"
"  for d = 1, n do idx[d] = index(opat(ops, i + d), shape[d] or 3) end\n"
"  return idx\n"
"end\n"
"local function at(t, idx)\n"
"  for _, i in ipairs(idx) do t = t[i] end\n"
"  return t\n"
"end\n"
"local function inrange(idx, shape)\n"
"  if #idx ~= #shape then return false end\n"
"  for d, i in ipairs(idx) do\n"
"    if math.type(i) ~= 'integer' or i < 1 or i > shape[d] then return false end\n"
"  end\n"
"  return true\n"
"end\n"
/* Byte offsets (0-based, in the exporter's memory) of every element. */
"local function offsets(base, shape, strides, out)\n"
"  for _, n in ipairs(shape) do if n == 0 then return out end end\n"
"  local function walk(d, off)\n"
"    if d > #shape then out[#out + 1] = off; return end\n"
"    for i = 0, shape[d] - 1 do walk(d + 1, off + i * strides[d]) end\n"
"  end\n"
"  walk(1, base)\n"
"  return out\n"
"end\n"
/* Bytes of the exporter's memory no element covers must never change. */
"local function untouched(before, after, offs, size, what)\n"
"  if #before ~= #after then fail('memory size changed') end\n"
"  local covered = {}\n"
"  for _, o in ipairs(offs) do for k = o, o + size - 1 do covered[k] = true end end\n"
"  for k = 0, #before - 1 do\n"
"    if not covered[k] and before:byte(k + 1) ~= after:byte(k + 1) then\n"
"      fail('%s wrote byte %d, outside every element', what, k)\n"
"    end\n"
"  end\n"
"end\n"
"local function check_layout(v, L)\n"
"  if v.ndim ~= L.ndim then fail('ndim %d, exporter said %d', v.ndim, L.ndim) end\n"
"  if v.itemsize ~= L.itemsize then fail('itemsize %d, exporter said %d', v.itemsize, L.itemsize) end\n"
"  if not eq(v.shape, L.shape) then fail('shape differs from the exporter') end\n"
"  if not eq(v.strides, L.strides) then fail('strides differ from the exporter') end\n"
"  if v.format ~= L.format then fail('format %q, exporter said %q', v.format, L.format) end\n"
"end\n"
"function B.check(obj, L, ops, mode)\n"
"  local okb, v = pcall(py.buffer, obj, mode)\n"
"  if not okb then clean(v, 'py.buffer'); return end\n"
"  if L and L.reject then fail('py.buffer accepted an invalid layout: %s', tostring(v)) end\n"
"  if L then check_layout(v, L) end\n"
"  B.exercise(v, obj, L, ops)\n"
"end\n"
"function B.array(fmt, n, ops, astable)\n"
"  local arg = n\n"
"  if astable then arg = {}; for i = 1, n do arg[i] = value(opat(ops, i)) end end\n"
"  local ok, v = pcall(py.array, fmt, arg)\n"
"  if not ok then clean(v, 'py.array'); return end\n"
"  if #v ~= n then fail('py.array gave %d elements, not %d', #v, n) end\n"
"  B.exercise(v, v, nil, ops)\n"
"end\n"
"function B.memoryview(fmt, shape, n, step, ops)\n"
"  local ok, m = pcall(make_mv, fmt, shape and py.tuple(table.unpack(shape)) or py.None, n, step)\n"
"  if not ok then return end\n"  /* an invalid cast: Python said no */
"  B.check(m, nil, ops, nil)\n"
"end\n"
"function B.exercise(v, obj, L, ops)\n"
"  local shape, nelem = v.shape, #v\n"
"  if nelem ~= product(shape) then fail('#v is %d, the shape says %d', nelem, product(shape)) end\n"
"  if v.nbytes ~= nelem * v.itemsize then fail('nbytes is %d', v.nbytes) end\n"
"  local small, run = true, 1\n"  /* no walk over more than 4096 rows or elements */
"  for _, n in ipairs(shape) do\n"
"    run = run * n\n"
"    if run > 4096 or n > 4096 then small = false end\n"
"    if run == 0 then break end\n"
"  end\n"
"  local offs = (L and small) and offsets(L.base, shape, v.strides, {})\n"
"  local function compare(what)\n"
"    if not small then return end\n"
"    local okr, r = pcall(ref_of, obj)\n"
"    if not okr then return end\n"  /* memoryview cannot show this format */
"    r = py.totable(r)\n"
"    local okt, t = pcall(v.totable, v)\n"
"    if not okt then clean(t, 'totable'); fail('totable failed: %s', tostring(t)) end\n"
"    if not eq(t, r[1]) then fail('%s: totable differs from memoryview.tolist()', what) end\n"
"    local okb, b = pcall(v.tobytes, v)\n"
"    if not okb then fail('tobytes failed: %s', tostring(b)) end\n"
"    if b ~= r[2] then fail('%s: tobytes differs from memoryview.tobytes()', what) end\n"
"  end\n"
"  compare('fresh')\n"
"  local before = L and L.snapshot()\n"
"  local wrote = false\n"
"  for i = 1, #ops do\n"
"    local op = ops[i]\n"
"    local k = op % 12\n"
"    local ok, e\n"
"    if k == 0 then\n"
"      local idx = pick(ops, i, shape, (op >> 4) % 3 - 1)\n"
"      ok, e = pcall(v.get, v, table.unpack(idx))\n"
"      if ok ~= inrange(idx, shape) then fail('get(%s) %s', table.concat(idx, ','), ok and 'worked' or 'failed') end\n"
"    elseif k == 1 then\n"
"      ok, e = pcall(function() return v[index(opat(ops, i), shape[1] or 1)] end)\n"
"    elseif k == 2 then\n"
"      local idx = pick(ops, i, shape, (op >> 4) % 3 - 1)\n"
"      idx[#idx + 1] = value(opat(ops, i + 7))\n"
"      ok, e = pcall(v.set, v, table.unpack(idx))\n"
"      wrote = wrote or ok\n"
"    elseif k == 3 then\n"
"      ok, e = pcall(function() v[index(opat(ops, i), shape[1] or 1)] = value(op >> 4) end)\n"
"      wrote = wrote or ok\n"
"    elseif k == 4 and small then\n"
"      ok, e = pcall(v.fill, v, value(op >> 4))\n"
"      wrote = wrote or ok\n"
"    elseif k == 5 and small then\n"
"      ok, e = pcall(v.tobytes, v)\n"
"      if ok and #e ~= v.nbytes then fail('tobytes gave %d bytes, not %d', #e, v.nbytes) end\n"
"    elseif k == 6 and small then\n"
"      ok, e = pcall(v.totable, v)\n"
"    elseif k == 7 then\n"
"      ok, e = pcall(function()\n"
"        return tostring(v), v.ndim, v.shape, v.strides, v.format, v.dtype, v.readonly, v:ptr()\n"
"      end)\n"
"      if not ok then fail('reading properties failed: %s', tostring(e)) end\n"
"    elseif k == 8 and small then\n"
"      ok, e = pcall(py.builtins.bytes, v)\n"  /* the View itself crosses to Python */
"    elseif k == 9 then\n"
"      local v2\n"
"      ok, v2 = pcall(py.buffer, obj, (op >> 4) & 1 == 1 and 'r' or nil)\n"
"      if ok then v2:release() else e = v2 end\n"
"    elseif k == 10 and op >= 128 then\n"
"      compare('after writes')\n"
"    elseif k == 11 and op >= 192 then\n"
"      break\n"
"    end\n"
"    if ok == false then clean(e, 'op ' .. k) end\n"
"  end\n"
"  if wrote and before and offs then untouched(before, L.snapshot(), offs, v.itemsize, 'a write') end\n"
"  compare('at the end')\n"
"  v:release()\n"
"  v:release()\n"
"  for _, f in ipairs({function() return v[1] end, function() return v:get(1) end,\n"
"                      function() return #v end, function() return v:tobytes() end,\n"
"                      function() v:fill(0) end}) do\n"
"    local ok, e = pcall(f)\n"
"    if ok then fail('a released View still answered') end\n"
"    clean(e, 'released View')\n"
"  end\n"
"  tostring(v)\n"
"end\n";

/* --- the exporter: a Python object whose buffer layout the input chose ---- */

typedef struct {
  PyObject_HEAD
  char *mem;                   /* malloc'd: exactly the claimed extent */
  Py_ssize_t extent;
  char *buf;                   /* element (0, ..., 0) inside mem */
  char *format;                /* NULL: no format (unsigned bytes) */
  Py_ssize_t itemsize, len;
  int ndim, readonly, exports;
  Py_ssize_t *shape, *strides, *suboffsets;
} Exporter;

static int exp_getbuffer(PyObject *self, Py_buffer *b, int flags) {
  Exporter *e = (Exporter *)self;
  if ((flags & PyBUF_WRITABLE) && e->readonly) {
    PyErr_SetString(PyExc_BufferError, "fuzz exporter: read-only");
    b->obj = NULL;
    return -1;
  }
  b->buf = e->buf;
  b->obj = Py_NewRef(self);
  b->len = e->len;
  b->itemsize = e->itemsize;
  b->readonly = e->readonly;
  b->ndim = e->ndim;
  b->format = e->format;
  b->shape = e->shape;
  b->strides = e->strides;
  b->suboffsets = e->suboffsets;
  b->internal = NULL;
  e->exports++;
  return 0;
}

static void exp_releasebuffer(PyObject *self, Py_buffer *b) {
  (void)b;
  ((Exporter *)self)->exports--;
}

static void exp_dealloc(PyObject *self) {
  Exporter *e = (Exporter *)self;
  if (e->exports) {
    fprintf(stderr, "fuzz: exporter freed with %d buffers still exported\n", e->exports);
    abort();
  }
  free(e->mem);
  free(e->format);
  free(e->shape);
  free(e->strides);
  free(e->suboffsets);
  Py_TYPE(self)->tp_free(self);
}

static PyObject *exp_snapshot(PyObject *self, PyObject *unused) {
  (void)unused;
  Exporter *e = (Exporter *)self;
  return PyBytes_FromStringAndSize(e->mem, e->extent);
}

static PyMethodDef exp_methods[] = {
  {"snapshot", exp_snapshot, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static PyBufferProcs exp_as_buffer = {exp_getbuffer, exp_releasebuffer};
static PyTypeObject ExporterType = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "fuzz.Exporter",
  .tp_basicsize = sizeof(Exporter),
  .tp_dealloc = exp_dealloc,
  .tp_as_buffer = &exp_as_buffer,
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_methods = exp_methods,
};

/* --- decoding a layout ----------------------------------------------------- */

static const char CODES[] = "bBhHiIlLqQnNefd?xcspP";
static const char PREFIXES[] = "\0@=<>!";

/* struct's size of a one-code format (native unless prefixed), 0 if it is
** not one the View supports. */
static Py_ssize_t code_size(const char *fmt) {
  if (!fmt) return 1;
  int std = 0;
  if (*fmt == '@') fmt++;
  else if (*fmt && strchr("=<>!", *fmt)) { std = 1; fmt++; }
  if (!fmt[0] || fmt[1]) return 0;
  switch (fmt[0]) {
    case 'b': case 'B': case '?': return 1;
    case 'h': case 'H': case 'e': return 2;
    case 'i': case 'I': case 'f': return 4;
    case 'l': case 'L': return std ? 4 : (Py_ssize_t)sizeof(long);
    case 'q': case 'Q': case 'd': return 8;
    case 'n': case 'N': return std ? 0 : (Py_ssize_t)sizeof(Py_ssize_t);
    default: return 0;
  }
}

typedef struct {
  Exporter *e;
  int reject;                  /* the layout breaks PEP 3118: must be refused */
  Py_ssize_t base;             /* offset of buf in mem */
} Made;

static int decode_format(fz_Reader *r, Exporter *e) {
  uint8_t c = fz_u8(r);
  char f[8] = {0};
  if (c % 8 == 0) return 0;  /* no format: "B" */
  if (c % 8 == 1) {          /* anything at all */
    size_t n;
    const char *s = fz_bytes(r, 6, &n);
    memcpy(f, s, n);
    f[n] = 0;
  } else {
    uint8_t p = fz_u8(r);
    int i = 0;
    if (p % 6) f[i++] = PREFIXES[p % 6];
    f[i++] = CODES[fz_u8(r) % (sizeof CODES - 1)];
    if (p >= 240) f[i++] = CODES[fz_u8(r) % (sizeof CODES - 1)];
  }
  e->format = strdup(f);
  return e->format != NULL;
}

static int fill_mem(Exporter *e, Py_ssize_t extent) {
  e->extent = extent;
  e->mem = malloc((size_t)(extent ? extent : 1));
  if (!e->mem) return 0;
  for (Py_ssize_t k = 0; k < extent; k++) e->mem[k] = (char)(k * 37 + 11);
  return 1;
}

/* Fills e from the input; sizes its memory to the layout's extent. */
static int decode_layout(fz_Reader *r, Made *m) {
  Exporter *e = m->e;
  if (fz_u8(r) % 2 == 0 && !decode_format(r, e)) return 0;
  Py_ssize_t size = code_size(e->format);
  uint8_t c = fz_u8(r);
  e->itemsize = c < 200 && size ? size : (Py_ssize_t)(int8_t)fz_u8(r) % 17;
  if (size && e->itemsize != size) m->reject = 1;  /* itemsize and format disagree */
  c = fz_u8(r);
  e->ndim = c < 240 ? c % 6 : c < 250 ? 64 + (c & 1) : -1;
  e->readonly = fz_u8(r) & 1;
  if (e->ndim < 0 || e->ndim > 64) m->reject = 1;
  int nd = e->ndim > 0 ? e->ndim : 0;
  Py_ssize_t isz = e->itemsize > 0 ? e->itemsize : 1;
  uint8_t how = fz_u8(r);
  if (e->ndim <= 1 && (how & 1)) {
    /* no shape (1-D: len / itemsize elements) and no strides */
    Py_ssize_t len = isz * (fz_u8(r) % 9);
    if (e->ndim == 0) len = isz;
    e->len = len;
    if (!fill_mem(e, m->reject || !e->len ? isz : e->len)) return 0;
    e->buf = e->mem;
    return 1;
  }
  if (how >= 252 && nd) {  /* indirect: refused */
    e->suboffsets = calloc((size_t)nd, sizeof *e->suboffsets);
    if (!e->suboffsets) return 0;
    for (int d = 0; d < nd; d++) e->suboffsets[d] = -1;
    m->reject = 1;
  }
  if (nd) {
    e->shape = calloc((size_t)nd, sizeof *e->shape);
    e->strides = calloc((size_t)nd, sizeof *e->strides);
    if (!e->shape || !e->strides) return 0;
  }
  /* shapes: small, or huge (then with stride 0), or negative (refused) */
  int huge = 0;
  Py_ssize_t prod = 1;
  for (int d = 0; d < nd; d++) {
    uint8_t s = fz_u8(r);
    if (s < 224) e->shape[d] = s % 7;
    else if (s < 250) { e->shape[d] = (Py_ssize_t)1 << (20 + s % 43); huge = 1; }
    else { e->shape[d] = -(Py_ssize_t)(s % 3) - 1; m->reject = 1; }
    if (e->shape[d] > 0 && prod < ((Py_ssize_t)1 << 32)) prod *= e->shape[d] <= 6 ? e->shape[d] : 7;
  }
  /* C order (strides NULL) only where the memory stays small */
  int c_order = (how & 2) && !huge && prod <= 1 << 16;
  Py_ssize_t want = isz;
  for (int d = nd - 1; d >= 0; d--) {
    uint8_t s = fz_u8(r);
    Py_ssize_t sh = e->shape[d];
    if (sh > 6) e->strides[d] = 0;
    else if (c_order) e->strides[d] = want;
    else if (s < 128) e->strides[d] = ((int)(s % 9) - 4) * isz;
    else e->strides[d] = (int8_t)s;
    if (c_order && sh >= 0) want *= sh;
  }
  /* the extent of the claimed layout: [lo, hi) around element (0, ..., 0) */
  Py_ssize_t lo = 0, hi = isz, nelem = 1;
  for (int d = 0; d < nd; d++) {
    Py_ssize_t sh = e->shape[d];
    if (sh <= 0) { nelem = 0; continue; }
    Py_ssize_t span = (sh - 1) * e->strides[d];
    if (span < 0) lo += span; else hi += span;
    const Py_ssize_t cap = (Py_ssize_t)1 << 40;  /* saturates: len is not used then */
    nelem = nelem > cap / sh ? cap : nelem * sh;
  }
  if (nelem == 0 || m->reject) { lo = 0; hi = isz; }
  if (!fill_mem(e, hi - lo)) return 0;
  m->base = -lo;
  e->buf = e->mem + m->base;
  e->len = nelem * isz;
  if (c_order) { free(e->strides); e->strides = NULL; }
  return 1;
}

/* Pushes the layout table the driver checks the View against. */
static void push_layout(lua_State *L, const Made *m, int snapshot) {
  const Exporter *e = m->e;
  lua_createtable(L, 0, 8);
  lua_pushboolean(L, m->reject);
  lua_setfield(L, -2, "reject");
  lua_pushinteger(L, e->ndim);
  lua_setfield(L, -2, "ndim");
  lua_pushinteger(L, e->itemsize);
  lua_setfield(L, -2, "itemsize");
  lua_pushstring(L, e->format ? e->format : "B");
  lua_setfield(L, -2, "format");
  lua_pushinteger(L, m->base);
  lua_setfield(L, -2, "base");
  int nd = e->ndim > 0 ? e->ndim : 0;
  lua_createtable(L, nd, 0);
  lua_createtable(L, nd, 0);
  Py_ssize_t want = e->itemsize;
  for (int d = nd - 1; d >= 0; d--) {
    Py_ssize_t sh = e->shape ? e->shape[d] : e->itemsize > 0 ? e->len / e->itemsize : 0;
    lua_pushinteger(L, sh);
    lua_rawseti(L, -3, d + 1);
    lua_pushinteger(L, e->strides ? e->strides[d] : want);
    lua_rawseti(L, -2, d + 1);
    if (!e->strides && sh >= 0) want *= sh;  /* C order: small dims only */
  }
  lua_setfield(L, -3, "strides");
  lua_setfield(L, -2, "shape");
  lua_pushvalue(L, snapshot);
  lua_setfield(L, -2, "snapshot");
}

static void push_ops(lua_State *L, fz_Reader *r) {
  int n = fz_u8(r) % 24;
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_pushinteger(L, fz_u8(r));
    lua_rawseti(L, -2, i);
  }
}

static void run_exporter(lua_State *L, fz_Reader *r) {
  Made m = {0};
  int took = pya__gil_enter(L);
  m.e = PyObject_New(Exporter, &ExporterType);
  if (!m.e) abort();
  memset((char *)m.e + sizeof(PyObject), 0, sizeof(Exporter) - sizeof(PyObject));
  int ok = decode_layout(r, &m);
  if (ok) pya__pushobj(L, (PyObject *)m.e);
  Py_DECREF(m.e);
  pya__gil_leave(took);
  if (!ok) return;  /* out of memory */
  lua_getfield(L, -1, "snapshot");
  int obj = lua_gettop(L) - 1, snap = lua_gettop(L);
  uint8_t mode = fz_u8(r) % 3;
  lua_getglobal(L, "B");
  lua_getfield(L, -1, "check");
  lua_remove(L, -2);
  lua_pushvalue(L, obj);
  push_layout(L, &m, snap);
  push_ops(L, r);
  if (mode == 0) lua_pushnil(L);
  else lua_pushstring(L, mode == 1 ? "r" : "w");
  fz_call(L, 4);
  lua_settop(L, obj - 1);
}

static void run_array(lua_State *L, fz_Reader *r) {
  char f[16] = {0};
  uint8_t c = fz_u8(r);
  if (c < 64) {
    size_t n;
    const char *s = fz_bytes(r, 7, &n);
    memcpy(f, s, n);
  } else {
    static const char *const NAMES[] = {"float32", "float64", "int8", "uint64",
                                        "bool", "float16", "bfloat16", "complex64"};
    if (c < 96) strcpy(f, NAMES[c % 8]);
    else {
      int i = 0;
      char p = PREFIXES[fz_u8(r) % 6];
      if (p) f[i++] = p;
      f[i] = CODES[fz_u8(r) % (sizeof CODES - 1)];
    }
  }
  lua_getglobal(L, "B");
  lua_getfield(L, -1, "array");
  lua_remove(L, -2);
  lua_pushstring(L, f);
  lua_pushinteger(L, fz_u8(r) % 40);
  push_ops(L, r);
  lua_pushboolean(L, c & 2);
  fz_call(L, 4);
}

static void run_memoryview(lua_State *L, fz_Reader *r) {
  static const char MVCODES[] = "bBhHiIlLqQnNefd?c";
  char f[2] = {MVCODES[fz_u8(r) % (sizeof MVCODES - 1)], 0};
  int nd = fz_u8(r) % 4;
  Py_ssize_t size = code_size(f) ? code_size(f) : 1, n = size;
  lua_getglobal(L, "B");
  lua_getfield(L, -1, "memoryview");
  lua_remove(L, -2);
  lua_pushstring(L, f);
  if (nd) {
    lua_createtable(L, nd, 0);
    for (int d = 1; d <= nd; d++) {
      int s = fz_u8(r) % 5;
      n *= s;
      lua_pushinteger(L, s);
      lua_rawseti(L, -2, d);
    }
  } else lua_pushnil(L);
  int step = (int8_t)fz_u8(r) % 3;
  lua_pushinteger(L, nd ? n : size * (fz_u8(r) % 9));
  lua_pushinteger(L, step);
  push_ops(L, r);
  fz_call(L, 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int loaded;
  lua_State *L = fz_state();
  if (!loaded++) {
    int took = pya__gil_enter(L);
    if (PyType_Ready(&ExporterType) < 0) abort();
    pya__gil_leave(took);
    fz_load(L, "=fuzz_buffer", DRIVER);
  }
  fz_Reader r = {data, size};
  switch (fz_u8(&r) % 4) {
    case 0: case 1: run_exporter(L, &r); break;
    case 2: run_array(L, &r); break;
    default: run_memoryview(L, &r); break;
  }
  fz_step(L);
  return 0;
}
