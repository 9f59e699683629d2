/*
** loop.c - the Python loop thread and the two C queues between it and the
** main thread (DESIGN.md invariants 1-3, 5, 7).  Submissions are C records
** plus one eventfd write per batch; completions are C records plus one
** coalesced uv_async_send.  Each side spins briefly before sleeping when a
** reply is likely to come at once, so a sequential round trip need not pay
** for two thread wake-ups.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "pyasync_int.h"

#define SPIN_NS PYA_SPIN_NS

typedef struct {
  pthread_mutex_t mu;
  void *head, *tail;          /* pya_Sub or pya_Comp, linked by next */
} Queue;

static Queue subq = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL};
static Queue compq = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL};
static Queue callq = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL};  /* into Lua */
atomic_int pya__ncalls;               /* callq may hold a call */

static int efd = -1;                  /* wakes the loop thread */
static atomic_int loop_signaled, loop_spinning;
static atomic_int comp_signaled, main_blocked;
static uv_async_t comp_async;         /* wakes the main thread */
static uv_loop_t *uvl;
static pthread_t loop_thread;
static int running;                   /* loop thread started, not joined */
static atomic_int loop_exited;
atomic_llong pya__inflight;           /* awaits submitted, not delivered */

/* Loop-thread state, touched only with the GIL held by the loop thread. */
static PyObject *start_fn, *tasks, *wids, *cancel_fn, *stop_fn, *aclose_fn;
static PyObject *str_result;           /* "result", interned */

/* --- queues ---------------------------------------------------------------- */

typedef struct Node { struct Node *next; } Node;

static int push(Queue *q, void *rec) {
  Node *n = rec;
  n->next = NULL;
  pthread_mutex_lock(&q->mu);
  int was_empty = q->head == NULL;
  if (q->tail) ((Node *)q->tail)->next = n;
  else __atomic_store_n(&q->head, n, __ATOMIC_RELEASE);  /* nonempty() peeks */
  q->tail = n;
  pthread_mutex_unlock(&q->mu);
  return was_empty;
}

static void *take_all(Queue *q) {
  pthread_mutex_lock(&q->mu);
  void *h = q->head;
  __atomic_store_n(&q->head, NULL, __ATOMIC_RELAXED);
  q->tail = NULL;
  pthread_mutex_unlock(&q->mu);
  return h;
}

/* A lock-free peek for the spinning side; the lock orders the rest. */
static int nonempty(Queue *q) {
  return __atomic_load_n(&q->head, __ATOMIC_ACQUIRE) != NULL;
}

long long pya__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int pya__spin(int (*ready)(void *), void *arg, long long budget_ns, int relax) {
  long long end = pya__now_ns() + budget_ns;
  int every = relax < 64 ? 64 / relax : 1;  /* looks between clock reads */
  for (int i = 1;; i++) {
    if (ready(arg)) return 1;
    if (i % every == 0) {
      if (pya__now_ns() > end) return ready(arg);
      /* the thread we wait for may share this CPU: let it run */
      sched_yield();
    }
    for (int k = 0; k < relax; k++) pya__cpu_relax();
  }
}

static int queue_ready(void *q) { return nonempty(q); }

/* Spins until q has something or the budget runs out. */
static int spin_for(Queue *q, long long budget_ns) {
  return pya__spin(queue_ready, q, budget_ns, 1);
}

/* Loop thread, GIL held: spins a little for the next submission, which is
** likely to come at once; returns whether one is there. */
static int linger_spin(void) {
  int more;
  Py_BEGIN_ALLOW_THREADS
  atomic_store(&loop_spinning, 1);
  more = spin_for(&subq, SPIN_NS);
  /* seq_cst, then one more look: a submission made after the spin's last
  ** look, which saw loop_spinning set and so wrote no eventfd, is seen
  ** here (pairs with pya__submit's fence) */
  atomic_store(&loop_spinning, 0);
  atomic_thread_fence(memory_order_seq_cst);
  more = more || nonempty(&subq);
  Py_END_ALLOW_THREADS
  return more;
}

/* --- main thread -> loop thread ------------------------------------------- */

static void wake_loop(void) {
  if (atomic_exchange(&loop_signaled, 1)) return;
  uint64_t one = 1;
  ssize_t r;
  do r = write(efd, &one, sizeof one); while (r < 0 && errno == EINTR);
}

/* A whole chain (linked by next, ending at tail) under one lock, one wake. */
void pya__submit_chain(pya_Sub *head, pya_Sub *tail) {
  tail->next = NULL;
  pthread_mutex_lock(&subq.mu);
  if (subq.tail) ((Node *)subq.tail)->next = (Node *)head;
  else __atomic_store_n(&subq.head, head, __ATOMIC_RELEASE);
  subq.tail = tail;
  pthread_mutex_unlock(&subq.mu);
  atomic_thread_fence(memory_order_seq_cst);
  if (!atomic_load(&loop_spinning)) wake_loop();
}

void pya__submit(pya_Sub *s) {
  push(&subq, s);
  /* pairs with the loop thread clearing loop_spinning, then looking again */
  atomic_thread_fence(memory_order_seq_cst);
  if (!atomic_load(&loop_spinning)) wake_loop();
}

static void post_result(long long id, int kind, PyObject *value);
static PyObject *l_drain(PyObject *self, PyObject *unused);
static int loop_idle(void);

/* asyncio's loop, cached by _ready() (NULL on uvloop, which hides its
** ready queue): for lingering.  And for start_coro, on both loops. */
static PyObject *call_soon_fn, *linger_fn, *ready_deque;
static PyObject *create_task_fn, *done_fn, *context_kw, *cb_ctx;
static PyObject *str_done, *str_add_done_callback;
static void complete(long long id, PyObject *fut);

static PyObject *call_method0(PyObject *o, PyObject *name) {
  return PyObject_CallMethodNoArgs(o, name);
}

/* A Task's first step, cb() in the task's context ctx (NULL: as it is),
** as its Handle would run it but without Handle._run's Python frame.
** Task.__step keeps every exception but SystemExit and KeyboardInterrupt
** on the task; those propagate, as from _run.  Steals cb and ctx. */
static PyObject *run_step(PyObject *cb, PyObject *ctx) {
  PyObject *r = NULL;
  if (!ctx) r = PyObject_CallNoArgs(cb);
  else if (PyContext_Enter(ctx) == 0) {
    r = PyObject_CallNoArgs(cb);
    if (PyContext_Exit(ctx) < 0) Py_CLEAR(r);
  }
  Py_DECREF(cb);
  Py_XDECREF(ctx);
  return r;
}

/* t.add_done_callback(_done, context=cb_ctx): _done needs no context of
** its own, and one shared Context saves a copy of the loop's per await. */
static PyObject *add_done(PyObject *t) {
  PyObject *args[3] = {t, done_fn, cb_ctx};
  return PyObject_VectorcallMethod(str_add_done_callback, args,
                                   2 | PY_VECTORCALL_ARGUMENTS_OFFSET, context_kw);
}

/* helper._start for a plain coroutine, in C: it is on the path of every
** await.  Creates the Task and runs its first step now (see _start): the
** step comes from the Task's own call_soon (pya__capture_begin).  Returns
** 1 if it finished at once, 0 if not, -1 on error. */
static int start_coro(pya_Sub *s, PyObject *idobj) {
  PyObject *args[2] = {s->obj, s->ctx ? s->ctx : Py_None};
  PyObject *cb, *ctx;
  pya__capture_begin();
  PyObject *t = PyObject_Vectorcall(create_task_fn, args, 1, context_kw);
  int captured = pya__capture_end(&cb, &ctx);
  if (!t) {
    if (captured) { Py_DECREF(cb); Py_XDECREF(ctx); }
    return -1;
  }
  int ret = 0;
  if (captured) {
    PyObject *r = run_step(cb, ctx);
    Py_XDECREF(r);
    /* KeyboardInterrupt or SystemExit escape the step after being set on
    ** the task: they reach the awaiter through the task */
    PyObject *exc = r ? NULL : pya__fetch_exc();
    PyObject *done = call_method0(t, str_done);
    if (done == Py_True) {
      complete(s->id, t);
      ret = 1;
    } else if (!r || !done) {
      ret = -1;
      if (exc) { PyErr_Clear(); PyErr_SetObject((PyObject *)Py_TYPE(exc), exc); }
    }
    Py_XDECREF(exc);
    Py_XDECREF(done);
    if (ret) goto out;
  }
  PyObject *added = NULL;
  if (PyDict_SetItem(tasks, idobj, t) < 0 || PyDict_SetItem(wids, t, idobj) < 0 ||
      !(added = add_done(t)))
    ret = -1;
  Py_XDECREF(added);
out:
  Py_DECREF(t);
  return ret;
}

/* Loop thread, GIL held: starts one awaitable; returns whether it finished
** at once (so another submission is likely to follow soon). */
static int start_one(pya_Sub *s) {
  PyObject *idobj = PyLong_FromLongLong(s->id);
  int eager = -1;
  if (idobj && create_task_fn && PyCoro_CheckExact(s->obj)) {
    eager = start_coro(s, idobj);
  } else if (idobj) {
    PyObject *args[3] = {s->obj, s->ctx ? s->ctx : Py_None, idobj};
    PyObject *r = PyObject_Vectorcall(start_fn, args, 3, NULL);
    if (r) eager = r == Py_True;
    Py_XDECREF(r);
  }
  Py_XDECREF(idobj);
  if (eager < 0) {  /* failed before it ran: the awaiter gets the error */
    post_result(s->id, PYA_C_ERR, pya__fetch_exc());
    return 1;
  }
  return eager;
}

static void run_sub(pya_Sub *s, int *all_eager) {
  PyObject *idobj;
  switch (s->op) {
    case PYA_OP_AWAIT:
      if (!start_one(s)) *all_eager = 0;
      break;
    case PYA_OP_CANCEL:
      idobj = PyLong_FromLongLong(s->id);
      if (idobj) {
        PyObject *t = PyDict_GetItemWithError(tasks, idobj);
        PyObject *r = t ? PyObject_CallOneArg(cancel_fn, t) : NULL;
        Py_XDECREF(r);
        Py_DECREF(idobj);
      }
      PyErr_Clear();  /* already finished: nothing to cancel */
      break;
    case PYA_OP_CALL: {
      PyObject *r = PyObject_CallNoArgs(s->obj);
      if (!r) PyErr_WriteUnraisable(s->obj);
      Py_XDECREF(r);
      break;
    }
    case PYA_OP_ACLOSE: {
      PyObject *r = PyObject_CallOneArg(aclose_fn, s->obj);
      if (!r) PyErr_WriteUnraisable(s->obj);
      Py_XDECREF(r);
      break;
    }
    case PYA_OP_ROOM:
      pya__ring_room(s->ring);
      break;
    case PYA_OP_STOP: {
      PyObject *r = PyObject_CallNoArgs(stop_fn);
      if (!r) PyErr_WriteUnraisable(stop_fn);
      Py_XDECREF(r);
      break;
    }
  }
  Py_XDECREF(s->obj);
  Py_XDECREF(s->ctx);
  free(s);
}

/* The eventfd reader: runs every batch, then lingers a little if the batch
** finished eagerly, since the main thread is then likely to submit again. */
static PyObject *l_drain(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  uint64_t v;
  if (read(efd, &v, sizeof v) < 0 && errno != EAGAIN) PyErr_SetFromErrno(PyExc_OSError);
  PyErr_Clear();
  atomic_store(&loop_signaled, 0);
  /* invariant 4: either thread drains the releases Lua's __gc deferred */
  if (atomic_load_explicit(&pya__rt.npending, memory_order_relaxed))
    pya__drain_pending(NULL);
  for (;;) {
    pya_Sub *s = take_all(&subq);
    int all_eager = 1;
    if (!s) break;
    while (s) {
      pya_Sub *next = s->next;
      run_sub(s, &all_eager);
      s = next;
    }
    /* linger only if the batch finished at once and the loop has nothing
    ** else to run: spinning must never hold up ready Python work */
    if (!all_eager || !loop_idle()) break;
    if (!linger_spin()) break;
  }
  Py_RETURN_NONE;
}

/* --- loop thread -> main thread ------------------------------------------- */

/* The main thread looks at the queues before it blocks: wake it only if
** it is (about to be) blocked in uv_run, at most once per batch. */
static void wake_blocked_main(void) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load(&main_blocked) && !atomic_exchange(&comp_signaled, 1))
    uv_async_send(&comp_async);
}

void pya__post(pya_Comp *c) {
  push(&compq, c);
  wake_blocked_main();
}

/* A call into Lua: the main thread runs it when it next polls, or before
** its next call into Python (pya__gil_enter), whichever comes first. */
void pya__post_call(pya_Comp *c) {
  push(&callq, c);
  atomic_store(&pya__ncalls, 1);
  wake_blocked_main();
}

pya_Comp *pya__take_calls(void) {
  atomic_store(&pya__ncalls, 0);
  return take_all(&callq);
}

static void post_result(long long id, int kind, PyObject *value) {
  pya_Comp *c = calloc(1, sizeof *c);
  if (!c) { Py_XDECREF(value); return; }  /* the awaiter hangs: no memory */
  c->kind = kind;
  c->id = id;
  /* a plain result is converted here, with the GIL held anyway, so the
  ** main thread need not take the GIL for it */
  if (kind == PYA_C_OK && value && (value == Py_None || pya__toscalar(value, &c->v)))
    Py_CLEAR(value);
  c->value = value;
  pya__post(c);
}

/* After a completion the main thread is likely to submit again at once.
** Once the loop has nothing else to run (asyncio's ready queue is empty),
** linger() spins a little for that submission instead of letting it pay
** for an eventfd wake-up.  uvloop hides its queue: no lingering there. */
static int linger_pending;

/* asyncio's loop has no callback ready to run (uvloop: unknown, so no). */
int pya__loop_idle(void) { return loop_idle(); }

static int loop_idle(void) {
  if (!ready_deque) return 0;
  Py_ssize_t n = PyObject_Length(ready_deque);
  if (n < 0) PyErr_Clear();
  return n == 0;
}

static void schedule_linger(void) {
  if (linger_pending || !call_soon_fn || !ready_deque) return;
  PyObject *r = PyObject_CallOneArg(call_soon_fn, linger_fn);
  if (r) { linger_pending = 1; Py_DECREF(r); }
  else PyErr_Clear();
}

static PyObject *l_linger(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  linger_pending = 0;
  if (!loop_idle()) Py_RETURN_NONE;
  if (linger_spin()) return l_drain(NULL, NULL);
  Py_RETURN_NONE;
}

static void complete(long long id, PyObject *fut) {
  PyObject *r = PyObject_CallMethodNoArgs(fut, str_result);
  if (r) post_result(id, PYA_C_OK, r);
  else post_result(id, PYA_C_ERR, pya__fetch_exc());
  schedule_linger();
}

/* _complete(id, task): the eager path reports a result. */
static PyObject *l_complete(PyObject *self, PyObject *const *args, Py_ssize_t n) {
  (void)self;
  if (n != 2) return PyErr_Format(PyExc_TypeError, "_complete(id, fut)");
  long long id = PyLong_AsLongLong(args[0]);
  if (id == -1 && PyErr_Occurred()) return NULL;
  complete(id, args[1]);
  Py_RETURN_NONE;
}

/* _done(task): the done callback of a started task (C: one per await). */
static PyObject *l_done(PyObject *self, PyObject *fut) {
  (void)self;
  PyObject *wid = PyDict_GetItemWithError(wids, fut);
  if (!wid) {
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;  /* not ours */
  }
  Py_INCREF(wid);
  long long id = PyLong_AsLongLong(wid);
  int bad = PyDict_DelItem(wids, fut) < 0;
  if (!bad && PyDict_DelItem(tasks, wid) < 0) {
    if (PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
    else bad = 1;
  }
  Py_DECREF(wid);
  if (bad || (id == -1 && PyErr_Occurred())) return NULL;
  complete(id, fut);
  Py_RETURN_NONE;
}

static void comp_ready(uv_async_t *h) {
  (void)h;
  atomic_store(&comp_signaled, 0);
}

/* Async-signal-safe: uv_async_send is. */
void pya__wake_main(void) {
  if (uvl) uv_async_send(&comp_async);
}

/* The completion handle keeps uv_run blocking only while we wait on it. */
void pya__ref_completions(int on) {
  if (on) uv_ref((uv_handle_t *)&comp_async);
  else uv_unref((uv_handle_t *)&comp_async);
}

static int main_has_work(void) { return nonempty(&compq) || nonempty(&callq); }

int pya__completions_ready(void) { return main_has_work(); }

pya_Comp *pya__take_completions(void) { return take_all(&compq); }

/* Main thread, before blocking for a completion: spin if one is due soon. */
static int main_work_ready(void *unused) { (void)unused; return main_has_work(); }

int pya__spin_main(void) {
  return pya__spin(main_work_ready, NULL, SPIN_NS, 1) || main_has_work();
}

/* Main thread: about to block in uv_run (on) or back (off).  Returns 0 if a
** completion is already there, so it must not block after all. */
int pya__main_blocking(int on) {
  if (!on) { atomic_store(&main_blocked, 0); return 1; }
  atomic_store(&main_blocked, 1);
  atomic_thread_fence(memory_order_seq_cst);  /* pairs with wake_blocked_main */
  if (main_has_work()) { atomic_store(&main_blocked, 0); return 0; }
  return 1;
}

/* --- starting and stopping ----------------------------------------------- */

static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;
static int ready_state;  /* 0 starting, 1 running, -1 failed */
static char loop_kind[16] = "asyncio";

void pya__set_loop_kind(const char *kind) {
  snprintf(loop_kind, sizeof loop_kind, "%s", kind);
}
const char *pya__loop_kind(void) { return loop_kind; }

static void set_ready(int st) {
  pthread_mutex_lock(&ready_mu);
  ready_state = st;
  pthread_cond_broadcast(&ready_cv);
  pthread_mutex_unlock(&ready_mu);
}

/* _ready(): the loop thread is inside run_forever and can take work. */
static PyObject *l_ready(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  PyObject *loop = PyObject_GetAttrString(pya__rt.helper, "_loop");
  if (loop) {
    call_soon_fn = PyObject_GetAttrString(loop, "call_soon");
    ready_deque = PyObject_GetAttrString(loop, "_ready");  /* asyncio only */
    linger_fn = PyObject_GetAttrString(pya__rt.helper, "_linger");
    if (!call_soon_fn || !ready_deque || !linger_fn) {
      Py_CLEAR(call_soon_fn); Py_CLEAR(ready_deque); Py_CLEAR(linger_fn);
    }
    create_task_fn = PyObject_GetAttrString(loop, "create_task");
    done_fn = PyObject_GetAttrString(pya__rt.helper, "_done");
    cb_ctx = PyObject_GetAttrString(pya__rt.helper, "_cb_ctx");
    context_kw = Py_BuildValue("(s)", "context");
    str_done = PyUnicode_InternFromString("done");
    str_add_done_callback = PyUnicode_InternFromString("add_done_callback");
    if (!create_task_fn || !done_fn || !cb_ctx || !context_kw || !str_done ||
        !str_add_done_callback)
      Py_CLEAR(create_task_fn);  /* start_coro off: helper._start does it */
    Py_DECREF(loop);
  }
  PyErr_Clear();
  set_ready(1);
  Py_RETURN_NONE;
}

static void *loop_main(void *arg) {
  (void)arg;
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *r = PyObject_CallMethod(pya__rt.helper, "_loop_main", "is", efd, loop_kind);
  if (!r) PyErr_Print();
  Py_XDECREF(r);
  Py_CLEAR(start_fn);
  Py_CLEAR(tasks);
  Py_CLEAR(wids);
  Py_CLEAR(str_result);
  Py_CLEAR(create_task_fn);

  Py_CLEAR(done_fn);
  Py_CLEAR(context_kw);

  Py_CLEAR(str_done);
  Py_CLEAR(str_add_done_callback);
  Py_CLEAR(cb_ctx);
  Py_CLEAR(cancel_fn);
  Py_CLEAR(stop_fn);
  Py_CLEAR(aclose_fn);
  Py_CLEAR(call_soon_fn);
  Py_CLEAR(ready_deque);
  Py_CLEAR(linger_fn);
  if (ready_state == 0) set_ready(-1);
  PyGILState_Release(g);
  atomic_store(&loop_exited, 1);
  return NULL;
}

/* _wake_loop(): from another thread, after it added to the loop's ready
** queue (helper._foreign_call_soon): the loop runs it at once.  A write to
** the eventfd, holding the GIL: the loop thread cannot run Python until the
** caller's synchronous call is over (a socket send, as call_soon_threadsafe
** does, would hand it the GIL in the middle of that call). */
static PyObject *l_wake_loop(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  if (efd >= 0) wake_loop();
  Py_RETURN_NONE;
}

static PyMethodDef loop_methods[] = {
  {"_drain", l_drain, METH_NOARGS, NULL},
  {"_wake_loop", l_wake_loop, METH_NOARGS, NULL},
  {"_ready", l_ready, METH_NOARGS, NULL},
  {"_linger", l_linger, METH_NOARGS, NULL},
  {"_complete", (PyCFunction)(void (*)(void))l_complete, METH_FASTCALL, NULL},
  {"_done", l_done, METH_O, NULL},
  {NULL, NULL, 0, NULL}};

static PyObject *helper_attr(const char *name) {
  return PyObject_GetAttrString(pya__rt.helper, name);
}

/* The main thread's libuv loop: luv's when luv was loaded first (luv.c),
** else libuv's default loop. */
void pya__uv_set_loop(uv_loop_t *loop) {
  if (uvl) return;  /* handles live on the current one: keep it */
  uvl = loop;
  uv_async_init(uvl, &comp_async, comp_ready);
  uv_unref((uv_handle_t *)&comp_async);
}

uv_loop_t *pya__uvloop(void) {
  if (!uvl) pya__uv_set_loop(uv_default_loop());
  return uvl;
}

int pya__loop_running(void) { return running && ready_state == 1; }


/* Main thread, GIL held.  Returns 0, or -1 with a Python exception set. */
int pya__loop_start(void) {
  if (running) return ready_state == 1 ? 0 : (PyErr_SetString(PyExc_RuntimeError, "the loop thread failed to start"), -1);
  if (pya__rt.closing) {
    PyErr_SetString(PyExc_RuntimeError, "pyasync is shut down");
    return -1;
  }
  pya__uvloop();
  if (PyModule_AddFunctions(pya__rt.helper, loop_methods) < 0) return -1;
  if (!(start_fn = helper_attr("_start")) || !(cancel_fn = helper_attr("_cancel")) ||
      !(stop_fn = helper_attr("_stop")) || !(tasks = helper_attr("_tasks")) ||
      !(wids = helper_attr("_wids")) ||
      !(str_result || (str_result = PyUnicode_InternFromString("result"))) ||
      !(aclose_fn = helper_attr("_aclose_bg")))
    return -1;
  efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) { PyErr_SetFromErrno(PyExc_OSError); return -1; }
  running = 1;
  ready_state = 0;
  int st;
  Py_BEGIN_ALLOW_THREADS
  /* signals (SIGINT for the host) belong to the main thread */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&loop_thread, NULL, loop_main, NULL) != 0) ready_state = -1;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_lock(&ready_mu);
  while (ready_state == 0) pthread_cond_wait(&ready_cv, &ready_mu);
  st = ready_state;
  pthread_mutex_unlock(&ready_mu);
  Py_END_ALLOW_THREADS
  if (st != 1) {
    PyErr_SetString(PyExc_RuntimeError, "the loop thread failed to start");
    return -1;
  }
  return 0;
}

/* Main thread, GIL not held: cancel what is left, stop, join.  While the
** loop winds down, calls it makes into Lua are refused (they would wait on
** this thread) and results are dropped without the GIL. */
void pya__loop_stop(void) {
  if (!running) return;
  if (ready_state == 1) {
    pya_Sub *s = calloc(1, sizeof *s);
    if (s) { s->op = PYA_OP_STOP; pya__submit(s); }
    while (!atomic_load(&loop_exited)) {
      for (pya_Comp *c = take_all(&compq), *next; c; c = next) {
        next = c->next;
        if (c->kind == PYA_C_CALL) pya__refuse_call(c);
        else { if (c->value) pya__defer_decref(c->value); free(c); }
      }
      for (pya_Comp *c = pya__take_calls(), *next; c; c = next) {
        next = c->next;
        pya__refuse_call(c);
      }
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
  pthread_join(loop_thread, NULL);
  running = 0;
  close(efd);
  efd = -1;
}

/* --- hosts with their own event loop (embed.c) ----------------------------
** Added for pyasync_step: a host sleeps in its own poll() on the libuv
** loop's backend fd, not in uv_run, so its main thread counts as blocked
** all along (its steps poll without blocking and leave the mark; only a
** blocking wait clears it, and the next step arms it again): completions
** and calls into Lua then uv_async_send, which makes that fd readable.
** Work already queued when it arms is signalled at once, as nobody would
** look at it otherwise.  Returns whether there was such work.  Main
** thread, after pya__uvloop(). */
int pya__main_arm(void) {
  if (!uvl) return 0;
  atomic_store(&main_blocked, 1);
  atomic_thread_fence(memory_order_seq_cst);  /* pairs with wake_blocked_main */
  if (!main_has_work()) return 0;
  uv_async_send(&comp_async);
  return 1;
}
