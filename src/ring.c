/*
** ring.c - the prefetch ring of py.aiter(x, {prefetch = n}) (API.md section
** 6): a single-producer single-consumer ring of converted items between the
** pump task on the loop thread and the Lua iterator on the main thread.
**
** The pump converts each item while it holds the GIL anyway (numbers and
** booleans to C values, strings to their UTF-8 bytes, anything else to an
** owned reference), so Lua takes items without ever taking the GIL: a
** consumer that took it would make the busy loop thread wait for it back.
** Each side sleeps only when the ring is empty (Lua) or full (the pump):
**   - Lua arms `want` with a waiter id; the pump's next push posts that id
**     as a completion without a value (sched.c delivers it GIL-free);
**   - the pump, once idle, spins briefly and then arms `room_wait` and
**     awaits a future; the pop that frees half the ring submits a
**     PYA_OP_ROOM record, which resolves that future on the loop thread.
** Both handshakes are a store, a full fence and a load on each side, so a
** wake-up cannot be lost.
**
** A slot keeps its object (a str whose UTF-8 Lua copies, say) until the pump
** reuses the slot or the ring is freed, both with the GIL held: the consumer
** never releases a Python reference.  An object handed to Lua as a proxy
** moves its reference to the proxy instead.
*/
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "pyasync_int.h"

/* The most slots one ring allocates: a larger prefetch runs this far ahead. */
#define RING_MAX 65536

/* a slot's tag: a pya_Scalar's PYA_V_BOOL, _INT or _NUM, or one of these */
enum { SLOT_STR = 16, SLOT_OBJ, SLOT_FUNC };

typedef struct {
  pya_Scalar v;               /* v.tag is the slot's tag */
  struct { const char *s; size_t n; } str;
  PyObject *hold;             /* owned; SLOT_OBJ's moves to a Lua proxy */
} Slot;

struct pya_Ring {
  atomic_int refs;            /* the _Ring object, plus PYA_OP_ROOM records */
  unsigned cap;               /* at most this many items wait in the ring */
  unsigned mask;              /* slots - 1: a power of two at least cap */
  unsigned threshold;         /* the pump wakes once at most this many wait */
  /* each side reads the other's counter only when its cached copy says
  ** the ring is full (pump) or empty (Lua): the lines move once a batch */
  alignas(64) atomic_uint head;   /* items pushed (the pump writes it) */
  unsigned tail_seen;             /* the pump's copy of tail */
  alignas(64) atomic_uint tail;   /* items popped (Lua writes it) */
  unsigned head_seen;             /* Lua's copy of head */
  alignas(64) atomic_llong want;  /* Lua's waiter id while the ring is empty */
  atomic_int room_wait;       /* the pump sleeps on room_fut */
  atomic_int ended;           /* the pump finished; end_exc is set */
  PyObject *end_exc;          /* owned: the source's error, or NULL */
  PyObject *room_fut;         /* owned, loop thread only */
  Slot slots[];
};

typedef struct {
  PyObject_HEAD
  pya_Ring *r;
} RingObject;

static PyTypeObject Ring_Type;

static void ring_release(pya_Ring *r) {  /* GIL held */
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  for (unsigned i = 0; i <= r->mask; i++) Py_XDECREF(r->slots[i].hold);
  Py_XDECREF(r->end_exc);
  Py_XDECREF(r->room_fut);
  free(r);
}

/* --- the pump's side: Python methods, loop thread, GIL held -------------- */

/* The slot for o: the pump's whole share of the conversion. */
static void slot_set(Slot *s, PyObject *o) {
  PyObject *old = s->hold;
  s->hold = NULL;
  if (pya__toscalar(o, &s->v)) {
    /* a number or a boolean: nothing to keep */
  } else if (PyUnicode_Check(o) || PyBytes_Check(o)) {
    PyObject *keep = Py_NewRef(o);
    Py_ssize_t n = 0;
    const char *p = NULL;
    if (PyBytes_Check(o)) {
      p = PyBytes_AS_STRING(o);
      n = PyBytes_GET_SIZE(o);
    } else if (!(p = PyUnicode_AsUTF8AndSize(o, &n))) {
      /* lone surrogates: their bytes, as pya__push keeps them */
      PyErr_Clear();
      Py_DECREF(keep);
      keep = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
      if (keep) { p = PyBytes_AS_STRING(keep); n = PyBytes_GET_SIZE(keep); }
      else { PyErr_Clear(); p = ""; n = 0; }
    }
    s->v.tag = SLOT_STR;
    s->str.s = p;
    s->str.n = (size_t)n;
    s->hold = keep;
  } else {
    /* a big int: a proxy, as pya__push makes; None too, so that a generic
    ** for does not stop at it (py.None, as batches) */
    s->v.tag = pya__iswrapped(o) ? SLOT_FUNC : SLOT_OBJ;
    s->hold = Py_NewRef(o);
  }
  Py_XDECREF(old);
}

/* Wakes Lua if it waits for an item or for the end. */
static void wake_consumer(pya_Ring *r) {
  if (!atomic_load(&r->want)) return;
  long long id = atomic_exchange(&r->want, 0);
  if (!id) return;
  pya_Comp *c = calloc(1, sizeof *c);
  if (!c) return;  /* the waiter hangs: no memory */
  c->kind = PYA_C_OK;
  c->id = id;
  pya__post(c);
}

static unsigned count(pya_Ring *r) {
  return atomic_load(&r->head) - atomic_load(&r->tail);
}

/* ring.push(item) -> whether there is room for another one.  The pump calls
** it only when there is room for this one. */
static PyObject *ring_push(PyObject *self, PyObject *item) {
  pya_Ring *r = ((RingObject *)self)->r;
  unsigned h = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (h - r->tail_seen >= r->cap) {
    r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - r->tail_seen >= r->cap)
      return PyErr_Format(PyExc_RuntimeError, "prefetch ring overrun");
  }
  slot_set(&r->slots[h & r->mask], item);
  /* own the line of a coming slot before the fence below must wait for it */
  __builtin_prefetch(&r->slots[(h + 4) & r->mask], 1);
  h++;
  /* seq_cst, a full fence: Lua arming want sees this item, or we see want
  ** (an item must never wait in the ring for the next push) */
  atomic_store(&r->head, h);
  wake_consumer(r);
  if (h - r->tail_seen < r->cap) Py_RETURN_TRUE;
  r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
  return PyBool_FromLong(h - r->tail_seen < r->cap);
}

static int has_room(void *r) {
  return count(r) <= ((pya_Ring *)r)->threshold;
}

/* ring.wait_room(fut) -> True: await fut, then ask again; False: there is
** room.  Spins a little first while the loop has nothing else to run. */
static PyObject *ring_wait_room(PyObject *self, PyObject *fut) {
  pya_Ring *r = ((RingObject *)self)->r;
  if (count(r) <= r->threshold) Py_RETURN_FALSE;
  if (pya__loop_idle()) {
    int room;
    Py_BEGIN_ALLOW_THREADS
    room = pya__spin(has_room, r, PYA_SPIN_NS, 1);
    Py_END_ALLOW_THREADS
    if (room) Py_RETURN_FALSE;
  }
  Py_XSETREF(r->room_fut, Py_NewRef(fut));
  atomic_store(&r->room_wait, 1);
  atomic_thread_fence(memory_order_seq_cst);  /* pairs with ring_wait's */
  if (count(r) <= r->threshold && atomic_exchange(&r->room_wait, 0)) {
    Py_CLEAR(r->room_fut);
    Py_RETURN_FALSE;
  }
  Py_RETURN_TRUE;
}

/* ring.finish(exc or None): the source ended; Lua sees exc after the rest. */
static PyObject *ring_finish(PyObject *self, PyObject *exc) {
  pya_Ring *r = ((RingObject *)self)->r;
  if (atomic_load(&r->ended)) Py_RETURN_NONE;
  if (exc != Py_None) r->end_exc = Py_NewRef(exc);
  atomic_store(&r->ended, 1);
  wake_consumer(r);
  Py_RETURN_NONE;
}

/* A PYA_OP_ROOM record on the loop thread: Lua freed room. */
void pya__ring_room(pya_Ring *r) {
  PyObject *f = r->room_fut;
  r->room_fut = NULL;
  if (f) {
    PyObject *done = PyObject_CallMethod(f, "done", NULL);
    PyObject *res = done == Py_False
                        ? PyObject_CallMethod(f, "set_result", "O", Py_None) : NULL;
    if (!done || (done == Py_False && !res)) PyErr_WriteUnraisable(f);
    Py_XDECREF(res);
    Py_XDECREF(done);
    Py_DECREF(f);
  }
  ring_release(r);
}

static PyObject *ring_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  long long n;
  if (kw || !PyArg_ParseTuple(args, "L", &n)) {
    if (kw) PyErr_SetString(PyExc_TypeError, "_Ring(n)");
    return NULL;
  }
  if (n < 1) return PyErr_Format(PyExc_ValueError, "prefetch must be positive");
  unsigned cap = n > RING_MAX ? RING_MAX : (unsigned)n, nslots = 1;
  while (nslots < cap) nslots <<= 1;
  size_t size = (sizeof(pya_Ring) + nslots * sizeof(Slot) + 63) / 64 * 64;
  pya_Ring *r = aligned_alloc(64, size);
  if (!r) return PyErr_NoMemory();
  memset(r, 0, size);
  atomic_init(&r->refs, 1);
  r->cap = cap;
  r->mask = nslots - 1;
  r->threshold = cap / 2;
  RingObject *self = (RingObject *)type->tp_alloc(type, 0);
  if (!self) { free(r); return NULL; }
  self->r = r;
  return (PyObject *)self;
}

static void ring_dealloc(PyObject *self) {
  if (((RingObject *)self)->r) ring_release(((RingObject *)self)->r);
  Py_TYPE(self)->tp_free(self);
}

static PyMethodDef ring_methods[] = {
  {"push", ring_push, METH_O, "push(item) -> room for another"},
  {"wait_room", ring_wait_room, METH_O, "wait_room(fut) -> must await fut"},
  {"finish", ring_finish, METH_O, "finish(exc or None)"},
  {NULL, NULL, 0, NULL}};

static PyTypeObject Ring_Type = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "pyasync._Ring",
  .tp_basicsize = sizeof(RingObject),
  .tp_flags = Py_TPFLAGS_DEFAULT,
  .tp_doc = "The prefetch ring between a pump task and a Lua iterator.",
  .tp_new = ring_new,
  .tp_dealloc = ring_dealloc,
  .tp_methods = ring_methods,
};

/* --- Lua's side: main thread, no GIL ----------------------------------- */

static pya_Ring *checkring(lua_State *L) {
  PyObject *o = pya__checkobj(L, 1);
  if (Py_TYPE(o) != &Ring_Type) luaL_typeerror(L, 1, "prefetch ring");
  return ((RingObject *)o)->r;
}

/* Lua freed room: the pump, asleep on room_fut, goes on. */
static void wake_pump(pya_Ring *r) {
  if (!atomic_exchange(&r->room_wait, 0)) return;
  pya_Sub *sub = calloc(1, sizeof *sub);
  if (!sub) return;  /* the pump hangs: no memory */
  atomic_fetch_add(&r->refs, 1);
  sub->op = PYA_OP_ROOM;
  sub->ring = r;
  pya__submit(sub);
}

/* core.ring_pop(ring) -> the next item, or nothing if there is none yet. */
static int l_ring_pop(lua_State *L) {
  pya_Ring *r = checkring(L);
  unsigned t = atomic_load_explicit(&r->tail, memory_order_relaxed);
  unsigned h = r->head_seen;
  if (t == h) {
    r->head_seen = h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (t == h) return 0;
  }
  Slot *s = &r->slots[t & r->mask];
  switch (s->v.tag) {
    case SLOT_STR: lua_pushlstring(L, s->str.s, s->str.n); break;
    case SLOT_FUNC: pya__pushwrapped(L, s->hold); break;
    case SLOT_OBJ:
      pya__pushobj_steal(L, s->hold);
      s->hold = NULL;
      break;
    default: pya__pushscalar(L, &s->v);
  }
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  /* no fence here: a pump going to sleep meanwhile is seen by a later pop,
  ** or by ring_wait (with a fence) once the ring is empty */
  if (atomic_load_explicit(&r->room_wait, memory_order_relaxed) &&
      h - (t + 1) <= r->threshold)
    wake_pump(r);
  return 1;
}

/* For ring_wait's spin, when Lua has nothing else to run: it looks at head
** only every 32 pause instructions (under a microsecond here), since each
** look takes the cache line away from the pump that writes it. */
static int has_items(void *arg) {
  pya_Ring *r = arg;
  return atomic_load_explicit(&r->head, memory_order_relaxed) != r->head_seen ||
         atomic_load_explicit(&r->ended, memory_order_relaxed);
}

/* core.ring_wait(ring [, spin]) -> nil: an item is there; false: the end;
** or an id that completes (without a value) once an item or the end is
** there.  With spin, waits a little first (nothing else is ready in Lua).
** Raises the source's error, once, after its items. */
static int l_ring_wait(lua_State *L) {
  pya_Ring *r = checkring(L);
  long long id = 0;
  if (lua_toboolean(L, 2)) pya__spin(has_items, r, PYA_SPIN_NS, 32);
  if (!count(r) && !atomic_load(&r->ended)) {
    if (atomic_load(&r->want))
      return luaL_error(L, "this async iterator is already advanced by another task");
    id = pya__new_wait();
    atomic_store(&r->want, id);  /* seq_cst: pairs with the push */
    atomic_thread_fence(memory_order_seq_cst);  /* pairs with wait_room's */
    if (atomic_load(&r->room_wait) && count(r) <= r->threshold) wake_pump(r);
    /* looked at once more: if something came meanwhile, disarm, unless
    ** the pump already took the id (its completion is then on its way) */
    if (!count(r) && !atomic_load(&r->ended)) goto wait;
    long long mine = id;
    if (!atomic_compare_exchange_strong(&r->want, &mine, 0)) goto wait;
    pya__end_wait();
  }
  if (count(r)) { lua_pushnil(L); return 1; }
  PyObject *e = r->end_exc;  /* ended: the pump is done with end_exc */
  if (!e) { lua_pushboolean(L, 0); return 1; }
  r->end_exc = NULL;
  int took = pya__gil_enter(L);
  pya__pushexc(L, e);
  Py_DECREF(e);
  pya__gil_leave(took);
  return lua_error(L);
wait:
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* core.ring_disarm(ring, id) -> true if no completion will come for id. */
static int l_ring_disarm(lua_State *L) {
  pya_Ring *r = checkring(L);
  long long id = (long long)luaL_checkinteger(L, 2);
  int ok = atomic_compare_exchange_strong(&r->want, &id, 0);
  if (ok) pya__end_wait();
  lua_pushboolean(L, ok);
  return 1;
}

static const luaL_Reg ring_funcs[] = {
  {"ring_pop", l_ring_pop}, {"ring_wait", l_ring_wait},
  {"ring_disarm", l_ring_disarm}, {NULL, NULL}};

/* Adds helper._Ring (GIL held) and the core functions (table on top). */
int pya__ring_open(lua_State *L) {
  if (!(Ring_Type.tp_flags & Py_TPFLAGS_READY) && PyType_Ready(&Ring_Type) < 0)
    return -1;
  Py_INCREF(&Ring_Type);
  if (PyModule_AddObject(pya__rt.helper, "_Ring", (PyObject *)&Ring_Type) < 0) {
    Py_DECREF(&Ring_Type);
    return -1;
  }
  luaL_setfuncs(L, ring_funcs, 0);
  return 0;
}
