/*
** pyasync_int.h - what the C files of pyasync share: the runtime record,
** the GIL discipline of the main thread, proxies, conversion and errors.
*/
#ifndef PYASYNC_INT_H
#define PYASYNC_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <lua.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "pyasync.h"

/* Metatable names. */
#define PYA_OBJECT "pyasync.Object"
#define PYA_KW "pyasync.kw"
#define PYA_ERROR "pyasync.PyError"
#define PYA_VIEW "pyasync.View"
#define PYA_TENSOR "pyasync.Tensor"

/* Arguments converted into a stack buffer up to this count. */
#define PYA_MAXSTACK 16

/* --- the runtime (runtime.c) ---------------------------------------------
** One per process: Python is one per process, and so is its loop thread. */
typedef struct pya_Runtime {
  int initialized;            /* Python set up by us or found running */
  int owns_python;            /* we called Py_Initialize: we finalize */
  atomic_int closing;         /* shutdown started: no new work (any thread reads it) */
  pthread_t main_thread;
  PyThreadState *main_ts;     /* main thread's state while GIL released */
  int gil_held;               /* main thread holds the GIL (nesting) */
  int in_remote_call;         /* main runs Lua for a waiting thread */
  lua_State *L;               /* main thread's running Lua thread at its
                              ** last entry into Python */
  lua_State *mainL;           /* the state pyasync was opened in */
  PyObject *helper;           /* the Python module "pyasync" (helper.py) */
  PyObject *LuaError;         /* pyasync.LuaError */
  /* Who may run Lua (docs/threading.md, "Lua on other threads"); all three
  ** are read and written with the GIL held only.  Lua code runs either on
  ** the main thread without the GIL, while main_gilfree is set and no
  ** borrow is active, or on any thread with the GIL held (the GIL then
  ** keeps Lua on one thread at a time). */
  int main_gilfree;           /* main runs Lua or waits in libuv, GIL-free */
  int active_borrows;         /* Python threads running a Lua call now */
  int main_returning;         /* main waits for them to leave Lua */
  /* releases deferred by __gc and by Python deallocs off the main thread */
  pthread_mutex_t pending_mu;
  atomic_int npending;
  PyObject **pending_obj; int npobj, cappobj;
  int *pending_ref; int npref, cappref;
} pya_Runtime;

extern pya_Runtime pya__rt;
extern atomic_int pya__ncalls;          /* calls into Lua posted to main */

int pya__init(lua_State *L);            /* idempotent; raises on failure */
void pya__shutdown(lua_State *L);
int pya__ismain(void);
void pya__run_calls(void);              /* main, GIL held (call.c) */
void pya__calls_may_borrow(void);       /* main, GIL held (call.c) */
void pya__wait_borrows(void);           /* main, GIL held (call.c) */

/* Main-thread GIL: take it unless held already; returns whether it took it.
** Drains the pending releases each time it is taken, and tells threads
** waiting for main to run their calls into Lua that they may run them
** themselves now (the Python call about to be made may wait for one of
** them).  On another thread Lua runs with the GIL held (a borrowed call,
** call.c): nothing to take. */
static inline int pya__gil_enter(lua_State *L) {
  if (!pya__ismain()) return 0;
  pya__rt.L = L;
  if (pya__rt.gil_held) return 0;
  if (!pya__rt.initialized) luaL_error(L, "pyasync is shut down (Python finalized)");
  PyEval_RestoreThread(pya__rt.main_ts);
  pya__rt.gil_held = 1;
  pya__rt.main_gilfree = 0;
  if (atomic_load_explicit(&pya__rt.npending, memory_order_relaxed))
    { extern void pya__drain_pending(lua_State *L); pya__drain_pending(L); }
  if (atomic_load_explicit(&pya__ncalls, memory_order_relaxed)) pya__calls_may_borrow();
  return 1;
}
/* Back to Lua without the GIL, once no other thread runs Lua. */
static inline void pya__gil_leave(int took) {
  if (took) {
    if (pya__rt.active_borrows) pya__wait_borrows();
    pya__rt.main_gilfree = 1;
    pya__rt.gil_held = 0;
    pya__rt.main_ts = PyEval_SaveThread();
  }
}
/* Releases the GIL whatever the nesting (before waiting in libuv);
** returns a token for pya__gil_restore. */
int pya__gil_suspend(void);
void pya__gil_restore(int token);

/* Deferred releases: safe from any thread, never blocks on the GIL. */
void pya__defer_decref(PyObject *o);
void pya__defer_unref(int ref);
void pya__drain_pending(lua_State *L);

/* --- proxies (object.c) ---------------------------------------------------- */
typedef struct pya_Proxy {
  PyObject *obj;              /* owned; NULL once released */
  int method;                 /* PYA_P_* */
} pya_Proxy;
/* fetched as obj.name: user value 1 is obj; or made by py.enter: closing it
** calls user value 1, the context's exit, then releases it */
enum { PYA_P_METHOD = 1, PYA_P_CLOSER = 2 };

/* Pushes a proxy owning a new reference to o (GIL held). */
void pya__pushobj(lua_State *L, PyObject *o);
/* Pushes a proxy that takes over the caller's reference to o (no GIL). */
void pya__pushobj_steal(lua_State *L, PyObject *o);
/* Like pya__pushobj, remembering the receiver at index recv (for obj:meth). */
void pya__pushmethod(lua_State *L, PyObject *o, int recv);
/* The object of the proxy at idx, or NULL if idx is not a proxy.  Raises
** "released Python object" for a released proxy. */
PyObject *pya__toobj(lua_State *L, int idx);
PyObject *pya__checkobj(lua_State *L, int idx);
int luaopen_pyasync_object(lua_State *L);
void pya__object_forget(void);

/* --- conversion (convert.c) ------------------------------------------------
** Both run with the GIL held.  pya__topy returns a new reference, or NULL
** with a Python exception set (never raises a Lua error except on memory). */
PyObject *pya__topy(lua_State *L, int idx);
/* Pushes the Lua value for o (borrowed); never fails except on memory. */
void pya__push(lua_State *L, PyObject *o);

/* A Lua value that needs no Python object: converted where the GIL is held
** (the loop thread), pushed where it is not (the main thread). */
enum { PYA_V_NIL = 0, PYA_V_BOOL, PYA_V_INT, PYA_V_NUM };
typedef struct {
  int tag;                    /* PYA_V_* */
  union { lua_Integer i; lua_Number d; } u;
} pya_Scalar;
/* A bool, an int that fits or a float as pya__push would push it; 0 for
** anything else (None included: callers differ on it).  GIL held. */
int pya__toscalar(PyObject *o, pya_Scalar *s);
void pya__pushscalar(lua_State *L, const pya_Scalar *s);  /* no GIL */

/* --- errors (error.c) ------------------------------------------------------ */
/* Pushes the current Python exception as a PyError (clears it).  If it is a
** LuaError carrying a Lua value, pushes that original value instead. */
void pya__pusherror(lua_State *L);
/* Pushes the given exception instance as a PyError (borrowed). */
void pya__pushexc(lua_State *L, PyObject *exc);
/* Builds a PyError with type and message, for CancelledError et al. */
void pya__pusherr_simple(lua_State *L, const char *type, const char *msg);
int luaopen_pyasync_error(lua_State *L);

typedef struct pya_Comp pya_Comp;

/* --- calls (call.c) -------------------------------------------------------- */
/* Calls f with the Lua arguments at [first, top]; a trailing py.kw table
** becomes keyword arguments.  GIL held; returns new ref or NULL. */
PyObject *pya__call(lua_State *L, PyObject *f, int first);
/* A Python callable wrapping the Lua value at idx (a function). */
PyObject *pya__wrapfunc(lua_State *L, int idx);
/* If o wraps a Lua function, pushes it and returns 1. */
int pya__pushwrapped(lua_State *L, PyObject *o);
int pya__iswrapped(PyObject *o);        /* no GIL needed */
int pya__call_init(PyObject *helper);
/* Main thread, GIL held: runs a PYA_C_CALL record and wakes its caller. */
void pya__run_call(pya_Comp *c);
void pya__refuse_call(pya_Comp *c);    /* no GIL: fail it, shutting down */
/* L is a thread a non-main thread runs a Lua call on (it cannot wait). */
int pya__borrowing(lua_State *L);
/* This thread runs Lua: the main thread, or one running a Lua call. */
int pya__on_lua_side(void);

/* --- loop thread and queues (loop.c) -------------------------------------- */
enum { PYA_OP_AWAIT = 1, PYA_OP_CANCEL, PYA_OP_CALL, PYA_OP_ACLOSE, PYA_OP_STOP,
       PYA_OP_ROOM };

typedef struct pya_Ring pya_Ring;  /* ring.c */

typedef struct pya_Sub {      /* main thread -> loop thread */
  struct pya_Sub *next;
  int op;
  long long id;               /* waiter id */
  PyObject *obj;              /* owned: awaitable, or callable for CALL */
  PyObject *ctx;              /* owned: contextvars context, or NULL */
  pya_Ring *ring;             /* PYA_OP_ROOM: a reference to the ring */
} pya_Sub;

struct pya_Comp {             /* loop thread -> main thread */
  struct pya_Comp *next;
  int kind;                   /* PYA_C_* */
  long long id;
  PyObject *value;            /* owned: result, exception, or args tuple */
  /* a result that needs no GIL to reach Lua, converted on the loop thread
  ** (value is then NULL); PYA_V_NIL is nil, as a NULL value always is */
  pya_Scalar v;
  /* for PYA_C_CALL: the loop thread waits on done */
  PyObject *func; PyObject *kwargs; PyObject *reply; int reply_ok;
  int nowait;                 /* PYA_C_CALL nobody waits for */
  atomic_int done;
  atomic_int claim;           /* PYA_C_CALL: 1 main runs it, 2 its caller */
};
enum { PYA_C_OK = 1, PYA_C_ERR, PYA_C_TIMER, PYA_C_CALL };

/* Calls into Lua posted to the main thread (call.c runs them). */
void pya__post_call(pya_Comp *c);        /* any thread, no GIL needed */
pya_Comp *pya__take_calls(void);         /* main thread; list in order */

int pya__loop_start(void);               /* GIL held on the main thread */
void pya__loop_stop(void);               /* GIL not held */
int pya__loop_running(void);
void pya__submit(pya_Sub *s);            /* any thread, no GIL needed */
void pya__submit_chain(pya_Sub *head, pya_Sub *tail);
void pya__post(pya_Comp *c);             /* any thread, no GIL needed */
pya_Comp *pya__take_completions(void);   /* main thread; list in order */
int pya__completions_ready(void);
uv_loop_t *pya__uvloop(void);
void pya__uv_set_loop(uv_loop_t *loop);
void pya__luv_setup(lua_State *L);      /* luv.c */
extern atomic_llong pya__inflight;
#define PYA_SPIN_NS 60000  /* how long a side spins before sleeping */
long long pya__now_ns(void);
static inline void pya__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
int pya__loop_idle(void);                /* loop thread, GIL held */
/* Spins (no GIL held) until ready(arg) or budget_ns has passed; looks at
** ready after every `relax` pause instructions and lets a thread sharing
** this CPU run now and then.  Returns whether ready(arg) held. */
int pya__spin(int (*ready)(void *), void *arg, long long budget_ns, int relax);
/* A wait the C core completes without a value: a new id, counted in
** flight; pya__end_wait uncounts one that will not complete (sched.c). */
long long pya__new_wait(void);
void pya__end_wait(void);
int pya__spin_main(void);
int pya__main_blocking(int on);
void pya__wake_main(void);
void pya__ref_completions(int on);
void pya__set_loop_kind(const char *kind);
const char *pya__loop_kind(void);

/* --- hosts with their own event loop (embed.c) --------------------------- */
/* The main thread counts as blocked until a blocking wait clears it, so
** that completions make the loop's backend fd readable; returns whether
** work was already queued (and signalled).  Main thread (loop.c). */
int pya__main_arm(void);

/* --- loop affinity (affinity.c) ------------------------------------------ */
int pya__affinity_init(PyObject *helper);  /* GIL held */
/* Loop thread: the next call_soon of a Task being created is kept, not
** scheduled; end hands it over (new references; ctx may be NULL). */
void pya__capture_begin(void);
int pya__capture_end(PyObject **cb, PyObject **ctx);
int luaopen_pyasync_affinity(lua_State *L);

/* --- streams (stream.c) --------------------------------------------------- */
int pya__isbatch(PyObject *o);
void pya__push_batch(lua_State *L, PyObject *o);
void pya__ring_room(pya_Ring *r);        /* loop thread, GIL held */
int pya__ring_open(lua_State *L);        /* GIL held; -1 with an exception */

/* --- buffers and DLPack (buffer.c, dlpack.c) ------------------------------ */
/* Python objects sharing the memory of a View / Tensor userdata at idx
** (new ref, or NULL with a Python exception set). */
PyObject *pya__view_topy(lua_State *L, int idx);
PyObject *pya__tensor_topy(lua_State *L, int idx);
int luaopen_pyasync_buffer(lua_State *L);
int luaopen_pyasync_dlpack(lua_State *L);

/* The raised exception, normalized, with its traceback (new ref), cleared;
** Python 3.11 has no PyErr_GetRaisedException. */
static inline PyObject *pya__fetch_exc(void) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  if (!t) return NULL;
  PyErr_NormalizeException(&t, &v, &tb);
  if (tb && v) PyException_SetTraceback(v, tb);
  Py_XDECREF(t);
  Py_XDECREF(tb);
  return v;
}

/* --- embedded sources (generated) ----------------------------------------- */
struct pya_LuaSource { const char *module, *chunkname, *src; size_t len; };
extern const struct pya_LuaSource pya__lua_modules[];  /* NULL-ended */
extern const char pya__src_helper_py[]; extern const size_t pya__src_helper_py_len;

#endif
