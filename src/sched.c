/*
** sched.c - the C half of the Lua task scheduler: submitting awaitables to
** the loop thread, libuv timers for py.sleep and timeouts, and poll(), which
** waits (GIL released) and hands a batch of completions to Lua, converted
** under one GIL acquisition.  The scheduling policy is in lua/pyasync.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "pyasync_int.h"

static long long next_id;
static long long last_submit_ns;
static pya_Comp *local_head, *local_tail;  /* main-thread records (timers) */
static volatile sig_atomic_t interrupted;
static lua_State *poll_L;

/* Lua that another Python thread runs (call.c) touches no libuv handle. */
#define OFF_MAIN "pyasync: cannot wait or use timers in a Lua function that " \
  "Python calls from another thread (use py.async_fn)"

static long long mono_ns(void) {
  return (long long)(uv_hrtime());
}

static void local_push(pya_Comp *c) {
  c->next = NULL;
  if (local_tail) local_tail->next = c;
  else local_head = c;
  local_tail = c;
}

/* --- submitting ------------------------------------------------------------ */

/* concurrent.futures.Future, once its module is loaded (only then can o be
** one); the loop thread wraps it with asyncio.wrap_future.  GIL held. */
static int is_cfuture(PyObject *o) {
  static PyTypeObject *cls;  /* kept */
  if (!cls) {
    PyObject *name = PyUnicode_FromString("concurrent.futures._base");
    PyObject *m = name ? PyImport_GetModule(name) : NULL;
    PyObject *c = m ? PyObject_GetAttrString(m, "Future") : NULL;
    Py_XDECREF(name);
    Py_XDECREF(m);
    if (c && PyType_Check(c)) cls = (PyTypeObject *)c;
    else Py_XDECREF(c);
    PyErr_Clear();
    if (!cls) return 0;
  }
  return PyObject_TypeCheck(o, cls);
}

static int is_awaitable(PyObject *o) {  /* GIL held */
  PyAsyncMethods *am = Py_TYPE(o)->tp_as_async;
  return PyCoro_CheckExact(o) || (am && am->am_await) || is_cfuture(o);
}

/* Queues op on obj (borrowed, may be NULL); returns its id or 0 with a Python
** exception set.  GIL held. */
static long long submit(int op, PyObject *obj, long long id) {
  if (pya__loop_start() < 0) return 0;
  pya_Sub *s = calloc(1, sizeof *s);
  if (!s) { PyErr_NoMemory(); return 0; }
  s->op = op;
  s->id = id ? id : ++next_id;
  s->obj = obj;
  Py_XINCREF(obj);
  if (op == PYA_OP_AWAIT) {
    s->ctx = PyContext_CopyCurrent();
    atomic_fetch_add(&pya__inflight, 1);
    last_submit_ns = mono_ns();
  }
  pya__submit(s);
  return s->id;
}

long long pya__new_wait(void) {
  atomic_fetch_add(&pya__inflight, 1);
  last_submit_ns = mono_ns();
  return ++next_id;
}

void pya__end_wait(void) { atomic_fetch_sub(&pya__inflight, 1); }

/* core.submit(aw) -> id: aw starts on the loop thread now. */
static int sched_submit(lua_State *L) {
  /* closing first: after shutdown even looking into a proxy is an error */
  if (pya__rt.closing) return luaL_error(L, "pyasync is shut down: cannot start new work");
  PyObject *aw = pya__toobj(L, 1);
  if (!aw) return luaL_error(L, "attempt to await a %s value (not awaitable)", luaL_typename(L, 1));
  long long want = (long long)luaL_optinteger(L, 2, 0);
  int took = pya__gil_enter(L);
  long long id = 0;
  char msg[160] = "";
  if (!is_awaitable(aw))
    snprintf(msg, sizeof msg, "attempt to await a '%.80s' object (not awaitable)", Py_TYPE(aw)->tp_name);
  else if (!(id = submit(PYA_OP_AWAIT, aw, want)))
    pya__pusherror(L);
  pya__gil_leave(took);
  if (*msg) return luaL_error(L, "%s", msg);
  if (!id) return lua_error(L);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* core.submit_call(f, ...) -> id: f(...) and its awaitable submitted under
** one GIL hold (a stream step or a queue operation: every GIL take on the
** main thread makes the busy loop thread wait for the GIL back). */
static int sched_submit_call(lua_State *L) {
  if (pya__rt.closing) return luaL_error(L, "pyasync is shut down: cannot start new work");
  PyObject *f = pya__checkobj(L, 1);
  int took = pya__gil_enter(L);
  PyObject *aw = pya__call(L, f, 2);
  long long id = 0;
  if (aw && !is_awaitable(aw))
    PyErr_Format(PyExc_TypeError, "'%.80s' object is not awaitable", Py_TYPE(aw)->tp_name);
  else if (aw) id = submit(PYA_OP_AWAIT, aw, 0);
  Py_XDECREF(aw);
  if (!id) pya__pusherror(L);
  pya__gil_leave(took);
  if (!id) return lua_error(L);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* core.submit_batch(list, n) -> first id: list[1..n] start on the loop
** thread as one batch, with ids first .. first+n-1 (py.gather).  Nothing
** is submitted if any of them is not awaitable. */
static int sched_submit_batch(lua_State *L) {
  if (pya__rt.closing) return luaL_error(L, "pyasync is shut down: cannot start new work");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 1) return luaL_argerror(L, 2, "positive count expected");
  for (lua_Integer i = 1; i <= n; i++) {  /* proxies, before the GIL */
    lua_rawgeti(L, 1, i);
    if (!pya__toobj(L, -1))
      return luaL_error(L, "attempt to await a %s (item %d, not awaitable)",
                        luaL_typename(L, -1), (int)i);
    lua_pop(L, 1);
  }
  int took = pya__gil_enter(L);
  char msg[160] = "";
  for (lua_Integer i = 1; i <= n && !*msg; i++) {
    lua_rawgeti(L, 1, i);
    PyObject *aw = pya__toobj(L, -1);
    if (!is_awaitable(aw))
      snprintf(msg, sizeof msg, "attempt to await a %.80s (item %d, not awaitable)",
               Py_TYPE(aw)->tp_name, (int)i);
    lua_pop(L, 1);
  }
  if (*msg) {
    pya__gil_leave(took);
    return luaL_error(L, "%s", msg);
  }
  int ok = pya__loop_start() == 0;
  long long first = next_id + 1;
  pya_Sub *head = NULL, *tail = NULL;
  for (lua_Integer i = 1; ok && i <= n; i++) {
    pya_Sub *s = calloc(1, sizeof *s);
    if (!s) { ok = 0; PyErr_NoMemory(); break; }
    lua_rawgeti(L, 1, i);
    s->obj = pya__toobj(L, -1);
    lua_pop(L, 1);
    Py_INCREF(s->obj);
    s->op = PYA_OP_AWAIT;
    s->id = ++next_id;
    s->ctx = PyContext_CopyCurrent();  /* one each, as asyncio.gather does */
    if (tail) tail->next = s; else head = s;
    tail = s;
  }
  if (ok) {
    atomic_fetch_add(&pya__inflight, n);
    last_submit_ns = mono_ns();
    pya__submit_chain(head, tail);
  } else {
    for (pya_Sub *s = head, *nx; s; s = nx) {
      nx = s->next;
      Py_XDECREF(s->obj); Py_XDECREF(s->ctx); free(s);
    }
    pya__pusherror(L);
  }
  pya__gil_leave(took);
  if (!ok) return lua_error(L);
  lua_pushinteger(L, (lua_Integer)first);
  return 1;
}

/* core.cancel(id): task.cancel() on the loop thread, if it still runs. */
static int sched_cancel(lua_State *L) {
  long long id = (long long)luaL_checkinteger(L, 1);
  if (pya__rt.closing || !pya__loop_running()) return 0;
  pya_Sub *s = calloc(1, sizeof *s);
  if (!s) return luaL_error(L, "out of memory");
  s->op = PYA_OP_CANCEL;
  s->id = id;
  pya__submit(s);
  return 0;
}

/* core.call_soon(f): f() on the loop thread, result ignored. */
static int sched_call_soon(lua_State *L) {
  PyObject *f = pya__checkobj(L, 1);
  if (pya__rt.closing) return luaL_error(L, "pyasync is shut down: cannot start new work");
  int took = pya__gil_enter(L);
  long long id = submit(PYA_OP_CALL, f, -1);
  if (!id) pya__pusherror(L);
  pya__gil_leave(took);
  if (!id) return lua_error(L);
  return 0;
}

static int sched_newid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)++next_id);
  return 1;
}

/* --- timers ---------------------------------------------------------------- */

typedef struct { uv_timer_t h; long long id; } Timer;
static char TIMERS_KEY;  /* registry: id -> lightuserdata Timer */

static void timer_free(uv_handle_t *h) { free(h); }

static void timers_forget(lua_State *L, long long id) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TIMERS_KEY);
  lua_pushnil(L);
  lua_rawseti(L, -2, (lua_Integer)id);
  lua_pop(L, 1);
}

/* Timers stopped by Lua that another thread ran: libuv handles belong to
** the main thread, which closes them at its next poll. */
static pthread_mutex_t stops_mu = PTHREAD_MUTEX_INITIALIZER;
static Timer *stops[64];
static atomic_int nstops;

static void close_timer(Timer *t) {
  uv_timer_stop(&t->h);
  uv_close((uv_handle_t *)&t->h, timer_free);
}

/* Main thread: t fired, and is closed now; it must not be closed again. */
static void unstop(Timer *t) {
  if (!atomic_load_explicit(&nstops, memory_order_relaxed)) return;
  pthread_mutex_lock(&stops_mu);
  int n = atomic_load(&nstops);
  for (int i = 0; i < n; i++)
    if (stops[i] == t) { stops[i] = stops[n - 1]; atomic_store(&nstops, n - 1); break; }
  pthread_mutex_unlock(&stops_mu);
}

static void close_stopped(void) {
  pthread_mutex_lock(&stops_mu);
  for (int n = atomic_load(&nstops); n > 0; n--) close_timer(stops[n - 1]);
  atomic_store(&nstops, 0);
  pthread_mutex_unlock(&stops_mu);
}

static void timer_fired(uv_timer_t *h) {
  Timer *t = (Timer *)h;
  pya_Comp *c = calloc(1, sizeof *c);
  if (c) { c->kind = PYA_C_TIMER; c->id = t->id; local_push(c); }
  if (poll_L) timers_forget(poll_L, t->id);
  unstop(t);
  uv_close((uv_handle_t *)h, timer_free);
}

/* core.timer(seconds [, id]) -> id: a completion (id, true) after seconds. */
static int sched_timer(lua_State *L) {
  if (!pya__ismain()) return luaL_error(L, OFF_MAIN);
  lua_Number s = luaL_checknumber(L, 1);
  long long id = (long long)luaL_optinteger(L, 2, 0);
  if (!id) id = ++next_id;
  Timer *t = malloc(sizeof *t);
  if (!t) return luaL_error(L, "out of memory");
  t->id = id;
  uv_timer_init(pya__uvloop(), &t->h);
  uint64_t ms = s <= 0 ? 0 : (uint64_t)(s * 1000.0 + 0.5);
  uv_timer_start(&t->h, timer_fired, ms, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TIMERS_KEY);
  lua_pushlightuserdata(L, t);
  lua_rawseti(L, -2, (lua_Integer)id);
  lua_pop(L, 1);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* core.timer_stop(id): no completion will come for it (one that fires all
** the same finds no waiter: the scheduler forgot it first). */
static int sched_timer_stop(lua_State *L) {
  long long id = (long long)luaL_checkinteger(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TIMERS_KEY);
  Timer *t = lua_rawgeti(L, -1, (lua_Integer)id) == LUA_TLIGHTUSERDATA
                 ? lua_touserdata(L, -1) : NULL;
  lua_pop(L, 2);
  if (!t) return 0;
  if (pya__ismain()) {
    timers_forget(L, id);
    close_timer(t);
    return 0;
  }
  pthread_mutex_lock(&stops_mu);
  int n = atomic_load(&nstops), room = n < (int)(sizeof stops / sizeof *stops);
  if (room) { stops[n] = t; atomic_store(&nstops, n + 1); }
  pthread_mutex_unlock(&stops_mu);
  if (room) timers_forget(L, id);  /* else it fires, for nobody */
  pya__wake_main();
  return 0;
}

/* --- polling --------------------------------------------------------------- */

void pyasync_interrupt(void) {
  interrupted = 1;
  if (pya__rt.initialized) pya__wake_main();
}

/* uv_run is not reentrant: a luv callback that awaits must fail instead. */
static void run_uv(lua_State *L, uv_run_mode mode) {
  poll_L = L;
  uv_run(pya__uvloop(), mode);
  poll_L = NULL;
}

/* Stock lua5.4 stops a script on SIGINT with a hook that fires at its next
** Lua instruction, and while the main thread waits in libuv there is none
** (libuv retries the interrupted epoll_wait).  So during such a wait a
** handler in front of the one in place calls it and wakes the loop; the
** host binary's does the same work (pyasync_interrupt).  Signal-safe. */
static struct sigaction chained;

static void on_sigint(int sig) {
  chained.sa_handler(sig);
  pya__wake_main();
}

static int chain_sigint(void) {
  struct sigaction sa;
  if (sigaction(SIGINT, NULL, &chained) < 0 || (chained.sa_flags & SA_SIGINFO) ||
      chained.sa_handler == SIG_DFL || chained.sa_handler == SIG_IGN ||
      chained.sa_handler == on_sigint)
    return 0;
  sa.sa_handler = on_sigint;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGINT, &sa, NULL) == 0;
}

/* The handler in place again, unless the chained one changed it (lua.c's
** resets SIGINT to the default once it ran, so that a second one kills). */
static void unchain_sigint(void) {
  struct sigaction now;
  if (sigaction(SIGINT, NULL, &now) == 0 && now.sa_handler == on_sigint)
    sigaction(SIGINT, &chained, NULL);
}

/* Waits for something to happen, without the GIL.  Returns 0 when there is
** nothing at all that could ever wake us. */
static int wait_events(lua_State *L, int block) {
  if (local_head || pya__completions_ready() || interrupted) {
    run_uv(L, UV_RUN_NOWAIT);
    return 1;
  }
  if (!block) { run_uv(L, UV_RUN_NOWAIT); return 1; }
  /* once shut down, submissions still counted will never complete */
  long long inflight = pya__rt.closing ? 0 : atomic_load(&pya__inflight);
  if (inflight > 0 && mono_ns() - last_submit_ns < 200000 && pya__spin_main())
    return 1;
  if (inflight == 0 && !uv_loop_alive(pya__uvloop()) && !pya__loop_running())
    return 0;
  if (!pya__main_blocking(1)) return 1;
  pya__ref_completions(1);
  int chain = chain_sigint();
  run_uv(L, UV_RUN_ONCE);
  if (chain) unchain_sigint();
  pya__ref_completions(0);
  pya__main_blocking(0);
  return 1;
}

static void deliver(lua_State *L, int buf, int *n, pya_Comp *c) {
  lua_pushinteger(L, (lua_Integer)c->id);
  lua_rawseti(L, buf, ++*n);
  lua_pushboolean(L, c->kind != PYA_C_ERR);
  lua_rawseti(L, buf, ++*n);
  if (c->kind == PYA_C_ERR) pya__pushexc(L, c->value);
  else if (c->value && pya__isbatch(c->value)) pya__push_batch(L, c->value);
  else if (c->value) pya__push(L, c->value);
  else pya__pushscalar(L, &c->v);  /* nil for a record without a value */
  lua_rawseti(L, buf, ++*n);
}

/* After Python was finalized only timers can still fire: deliver them
** without the GIL; Python records are dropped (nothing can release them). */
static int poll_finalized(lua_State *L, pya_Comp *c, int n) {
  while (c) {
    pya_Comp *next = c->next;
    if (c->kind == PYA_C_TIMER) deliver(L, 1, &n, c);
    free(c);
    c = next;
  }
  lua_pushinteger(L, n);
  return 1;
}

/* core.poll(buf, block) -> n: fills buf with (id, ok, value) triples.  A
** negative count means nothing is left that could complete. */
static int sched_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int block = lua_toboolean(L, 2);
  if (!pya__ismain()) return luaL_error(L, OFF_MAIN);
  if (poll_L)
    return luaL_error(L, "pyasync: cannot wait inside a libuv (luv) callback; "
                         "start a task with py.spawn instead");
  if (atomic_load_explicit(&nstops, memory_order_relaxed)) close_stopped();
  int tok = pya__gil_suspend();
  int alive = wait_events(L, block);
  pya__gil_restore(tok);
  /* calls into Lua that other threads posted: gil_enter runs them */
  if (atomic_load_explicit(&pya__ncalls, memory_order_relaxed) && pya__rt.initialized) {
    int t = pya__gil_enter(L);
    pya__run_calls();
    pya__gil_leave(t);
  }
  pya_Comp *c = pya__take_completions();
  if (local_head) {  /* timers first: they are already due */
    local_tail->next = c;
    c = local_head;
    local_head = local_tail = NULL;
  }
  int n = 0;
  if (interrupted) {
    interrupted = 0;
    lua_pushinteger(L, 0); lua_rawseti(L, 1, ++n);
    lua_pushboolean(L, 0); lua_rawseti(L, 1, ++n);
    lua_pushliteral(L, "interrupted"); lua_rawseti(L, 1, ++n);
  }
  if (!c) { lua_pushinteger(L, alive || n ? n : -1); return 1; }
  if (!pya__rt.initialized) return poll_finalized(L, c, n);
  /* completions without a Python value (timers, prefetch rings, plain
  ** results converted on the loop thread) need no GIL */
  int need_gil = 0;
  for (pya_Comp *x = c; x && !need_gil; x = x->next) need_gil = x->value != NULL;
  int took = need_gil ? pya__gil_enter(L) : 0;
  while (c) {
    pya_Comp *next = c->next;
    if (c->kind != PYA_C_TIMER) atomic_fetch_sub(&pya__inflight, 1);
    deliver(L, 1, &n, c);
    Py_XDECREF(c->value);
    free(c);
    c = next;
  }
  pya__gil_leave(took);
  lua_pushinteger(L, n);
  return 1;
}

static int sched_inflight(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atomic_load(&pya__inflight));
  return 1;
}

static int sched_in_remote_call(lua_State *L) {
  lua_pushboolean(L, pya__rt.in_remote_call > 0 || pya__borrowing(L));
  return 1;
}

/* core.set_loop(kind): "asyncio" or "uvloop", before the loop starts. */
static int sched_set_loop(lua_State *L) {
  const char *k = luaL_checkstring(L, 1);
  if (strcmp(k, "asyncio") && strcmp(k, "uvloop"))
    return luaL_argerror(L, 1, "\"asyncio\" or \"uvloop\" expected");
  if (pya__loop_running() && strcmp(k, pya__loop_kind()))
    return luaL_error(L, "the %s loop is already running", pya__loop_kind());
  pya__set_loop_kind(k);
  return 0;
}

/* core.make_error(type, msg) -> PyError, e.g. CancelledError, TimeoutError */
static int sched_make_error(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  const char *msg = luaL_optstring(L, 2, "");
  if (!pya__rt.initialized) {  /* Python is gone: a plain message will do */
    lua_pushfstring(L, "%s: %s", type, msg);
    return 1;
  }
  int took = pya__gil_enter(L);
  pya__pusherr_simple(L, type, msg);
  pya__gil_leave(took);
  return 1;
}

static int sched_shutdown(lua_State *L) {
  pya__shutdown(L);
  return 0;
}

static const luaL_Reg sched_funcs[] = {
  {"submit", sched_submit}, {"submit_batch", sched_submit_batch},
  {"submit_call", sched_submit_call},
  {"cancel", sched_cancel},
  {"call_soon", sched_call_soon}, {"newid", sched_newid},
  {"timer", sched_timer}, {"timer_stop", sched_timer_stop},
  {"poll", sched_poll}, {"inflight", sched_inflight},
  {"in_remote_call", sched_in_remote_call}, {"set_loop", sched_set_loop},
  {"make_error", sched_make_error}, {"shutdown", sched_shutdown},
  {NULL, NULL}};

int luaopen_pyasync_sched(lua_State *L) {
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TIMERS_KEY);
  const char *kind = getenv("PYASYNC_LOOP");
  if (kind && (!strcmp(kind, "uvloop") || !strcmp(kind, "asyncio")))
    pya__set_loop_kind(kind);
  luaL_setfuncs(L, sched_funcs, 0);
  return 0;
}
