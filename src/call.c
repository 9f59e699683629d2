/*
** call.c - calls across the boundary.  Lua calling Python: arguments in a
** stack buffer, vectorcall.  Python calling Lua: the LuaFunction type, which
** runs the function at once on the main thread, or hands the call to the
** main thread and waits with the GIL released when called from elsewhere.
*/
#include "pyasync_int.h"

/* --- Lua calling Python --------------------------------------------------- */

static int is_kw(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, PYA_KW);
  int r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

/* A py.kw table as a dict: string keys only. */
static PyObject *kw_topy(lua_State *L, int idx) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      Py_DECREF(d);
      PyErr_SetString(PyExc_TypeError, "keyword argument names must be strings");
      return NULL;
    }
    PyObject *v = pya__topy(L, -1);
    int bad = !v || PyDict_SetItemString(d, lua_tostring(L, -2), v) < 0;
    Py_XDECREF(v);
    lua_pop(L, 1);
    if (bad) { lua_pop(L, 1); Py_DECREF(d); return NULL; }
  }
  return d;
}

PyObject *pya__call(lua_State *L, PyObject *f, int first) {
  PyObject *stack[PYA_MAXSTACK + 1], **args = stack, *kw = NULL, *r = NULL;
  int top = lua_gettop(L);
  if (top >= first && is_kw(L, top)) {
    if (!(kw = kw_topy(L, top))) return NULL;
    top--;
  }
  Py_ssize_t n = top - first + 1, i = 0;
  if (n > PYA_MAXSTACK && !(args = PyMem_Malloc(sizeof(PyObject *) * (size_t)(n + 1)))) {
    Py_XDECREF(kw);
    return PyErr_NoMemory();
  }
  for (; i < n; i++)
    if (!(args[i + 1] = pya__topy(L, first + (int)i))) break;
  if (i == n) {
    if (kw) r = PyObject_VectorcallDict(f, args + 1, (size_t)n, kw);
    else r = PyObject_Vectorcall(f, args + 1, (size_t)n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
  }
  while (i > 0) Py_DECREF(args[i--]);
  if (args != stack) PyMem_Free(args);
  Py_XDECREF(kw);
  return r;
}

/* --- Python calling Lua --------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  int ref;                    /* registry reference to the Lua function */
} LuaFunc;

static PyTypeObject LuaFunc_Type;
static char TRACEBACK_KEY;

/* Message handler: keep the error value, note the traceback aside. */
static int msgh(lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &TRACEBACK_KEY);
  return 1;
}

/* The string at idx as a str, bytes that are not UTF-8 replaced: the
** message of any Lua error must make it into the LuaError. */
static PyObject *text(lua_State *L, int idx) {
  size_t n = 0;
  const char *s = lua_tolstring(L, idx, &n);
  return PyUnicode_DecodeUTF8(s ? s : "", (Py_ssize_t)n, "replace");
}

/* By metatable, not by __name: any table may carry any __name. */
static int is_pyerror(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, PYA_ERROR);
  int r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

/* The Lua error on top of L as a Python exception: a PyError goes back as
** its exception; anything else becomes LuaError holding the value.  GIL
** held, inside a Python call: nothing here may raise a Lua error. */
static void lua_error_topy(lua_State *L) {
  if (is_pyerror(L, -1)) {
    PyObject *exc = pya__topy(L, -1);  /* its exception; no Lua error */
    if (exc) {
      PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
      Py_DECREF(exc);
      return;
    }
    PyErr_Clear();  /* its exception was released: send the table itself */
  }
  /* message and traceback from copies: lua_tostring turns a number into a
  ** string in place, and the value must come back unchanged */
  int v = lua_gettop(L);
  if (lua_type(L, v) == LUA_TSTRING || lua_type(L, v) == LUA_TNUMBER) lua_pushvalue(L, v);
  else lua_pushstring(L, luaL_typename(L, v));
  lua_rawgetp(L, LUA_REGISTRYINDEX, &TRACEBACK_KEY);
  PyObject *msg = text(L, v + 1), *tb = text(L, v + 2);
  lua_pop(L, 2);
  lua_pushvalue(L, v);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* LUA_REFNIL for nil */
  PyObject *e = msg && tb ? PyObject_CallFunction(pya__rt.LuaError, "OOi", msg, tb, ref) : NULL;
  Py_XDECREF(msg);
  Py_XDECREF(tb);
  if (e) {
    PyErr_SetObject(pya__rt.LuaError, e);
    Py_DECREF(e);
  } else luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

static PyObject *results_topy(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n == 0) Py_RETURN_NONE;
  if (n == 1) return pya__topy(L, base + 1);
  PyObject *t = PyTuple_New(n);
  for (int i = 0; t && i < n; i++) {
    PyObject *v = pya__topy(L, base + 1 + i);
    if (!v) { Py_CLEAR(t); break; }
    PyTuple_SET_ITEM(t, i, v);
  }
  return t;
}

/* Runs the Lua function ref on the Lua thread L with the GIL held (on the
** main thread, or on a thread that borrows Lua).  Keyword arguments arrive
** as one trailing table. */
static PyObject *call_on(lua_State *L, int ref, PyObject *const *args, Py_ssize_t n,
                         PyObject *kwnames) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (!lua_checkstack(L, (int)(n + nkw) + 4)) return PyErr_NoMemory();
  int base = lua_gettop(L);
  lua_pushcfunction(L, msgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  for (Py_ssize_t i = 0; i < n; i++) pya__push(L, args[i]);
  if (nkw) {
    lua_createtable(L, 0, (int)nkw);
    for (Py_ssize_t i = 0; i < nkw; i++) {  /* names may not be UTF-8 */
      pya__push(L, PyTuple_GET_ITEM(kwnames, i));
      pya__push(L, args[n + i]);
      lua_rawset(L, -3);
    }
  }
  PyObject *r = NULL;
  if (lua_pcall(L, (int)(n + (nkw > 0)), LUA_MULTRET, base + 1) == LUA_OK)
    r = results_topy(L, base + 1);
  else lua_error_topy(L);
  lua_settop(L, base);
  return r;
}

/* On the main thread: on the Lua thread that called into Python. */
static PyObject *call_here(int ref, PyObject *const *args, Py_ssize_t n,
                           PyObject *kwnames) {
  lua_State *L = pya__rt.L;
  PyObject *r = call_on(L, ref, args, n, kwnames);
  pya__rt.L = L;
  return r;
}

static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t call_cv = PTHREAD_COND_INITIALIZER;
static unsigned window_gen;  /* under call_mu: main entered Python again */

static PyObject *call_borrowed(LuaFunc *self, PyObject *const *args, Py_ssize_t n,
                               PyObject *kwnames);

/* GIL held: this thread may run a Lua call itself now (see below). */
static int can_borrow(void) {
  return !pya__rt.main_gilfree && (!pya__rt.main_returning || pya__rt.active_borrows);
}

/* From another thread while the main thread runs Lua: the main thread
** runs it (pya__run_call) while this one waits without the GIL. */
static PyObject *call_remote(LuaFunc *self, PyObject *const *args, Py_ssize_t n,
                             PyObject *kwnames) {
  pya_Comp *c = calloc(1, sizeof *c);
  if (!c) return PyErr_NoMemory();
  c->kind = PYA_C_CALL;
  c->func = (PyObject *)self;
  Py_INCREF(self);
  c->value = PyTuple_New(n + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0));
  if (!c->value) {  /* no memory: fail here, not as a call that returns None */
    Py_DECREF(self);
    free(c);
    return NULL;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(c->value); i++) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(c->value, i, args[i]);
  }
  c->kwargs = kwnames;
  Py_XINCREF(kwnames);
  c->id = n;
  pthread_mutex_lock(&call_mu);
  unsigned gen = window_gen;
  pthread_mutex_unlock(&call_mu);
  pya__post_call(c);
  /* until main has run it, or main is inside Python again (it may wait for
  ** this very thread) and the call is still ours to take: then it runs here
  ** and main, coming to the record, only frees it */
  for (;;) {
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&call_mu);
    while (!atomic_load(&c->done) && gen == window_gen) pthread_cond_wait(&call_cv, &call_mu);
    gen = window_gen;
    pthread_mutex_unlock(&call_mu);
    Py_END_ALLOW_THREADS
    if (atomic_load(&c->done)) break;
    int mine = 0;
    if (can_borrow() && atomic_compare_exchange_strong(&c->claim, &mine, 2))
      return call_borrowed(self, args, n, kwnames);
  }
  PyObject *r = c->reply;
  if (!c->reply_ok && !r)
    PyErr_SetString(PyExc_RuntimeError, "pyasync shut down during a call into Lua");
  else if (!c->reply_ok) {
    PyErr_SetObject((PyObject *)Py_TYPE(r), r);
    Py_CLEAR(r);
  }
  free(c);
  return r;
}

/* Main thread, GIL held: the call a non-main thread asked for. */
void pya__run_call(pya_Comp *c) {
  LuaFunc *f = (LuaFunc *)c->func;
  PyObject *r = NULL;
  int mine = 0;
  if (!atomic_compare_exchange_strong(&c->claim, &mine, 1)) {  /* its caller ran it */
    Py_CLEAR(c->value);
    Py_CLEAR(c->func);
    Py_CLEAR(c->kwargs);
    free(c);
    return;
  }
  int saved = pya__rt.gil_held;
  pya__rt.gil_held = 1;
  pya__rt.in_remote_call++;
  if (c->value && !pya__rt.closing)
    r = call_here(f->ref, &PyTuple_GET_ITEM(c->value, 0), (Py_ssize_t)c->id, c->kwargs);
  else if (c->value)
    PyErr_SetString(PyExc_RuntimeError, "pyasync is shut down: cannot call Lua");
  pya__rt.in_remote_call--;
  pya__rt.gil_held = saved;
  if (c->nowait) {  /* nobody to hand an error to: report it */
    if (!r) PyErr_WriteUnraisable(c->func ? c->func : Py_None);
    Py_XDECREF(r);
    Py_CLEAR(c->value);
    Py_CLEAR(c->func);
    free(c);
    return;
  }
  c->reply_ok = r != NULL;
  c->reply = r ? r : pya__fetch_exc();
  if (!c->reply) { c->reply = Py_None; Py_INCREF(Py_None); c->reply_ok = 1; }
  Py_CLEAR(c->value);
  Py_CLEAR(c->func);
  Py_CLEAR(c->kwargs);
  pthread_mutex_lock(&call_mu);
  atomic_store(&c->done, 1);
  pthread_cond_broadcast(&call_cv);
  pthread_mutex_unlock(&call_mu);
}

/* Main thread, GIL held, entering Python while calls wait for it: their
** callers may run them themselves now. */
void pya__calls_may_borrow(void) {
  pthread_mutex_lock(&call_mu);
  window_gen++;
  pthread_cond_broadcast(&call_cv);
  pthread_mutex_unlock(&call_mu);
}

/* Main thread, GIL held: every call posted so far. */
void pya__run_calls(void) {
  for (pya_Comp *c = pya__take_calls(), *next; c; c = next) {
    next = c->next;
    pya__run_call(c);  /* frees c, or its waiting caller does */
  }
}

/* Main thread, no GIL, shutting down: the caller gets an error. */
void pya__refuse_call(pya_Comp *c) {
  pya__defer_decref(c->func);
  if (c->value) pya__defer_decref(c->value);
  if (c->kwargs) pya__defer_decref(c->kwargs);
  c->func = c->value = c->kwargs = NULL;
  int mine = 0;
  if (c->nowait || !atomic_compare_exchange_strong(&c->claim, &mine, 1)) {
    free(c);  /* nobody waits, or its caller ran it */
    return;
  }
  c->reply = NULL;
  c->reply_ok = 0;
  pthread_mutex_lock(&call_mu);
  atomic_store(&c->done, 1);
  pthread_cond_broadcast(&call_cv);
  pthread_mutex_unlock(&call_mu);
}

/* --- Lua on other threads ----------------------------------------------------
** While the main thread is inside Python (a synchronous call from Lua that
** may wait for this very thread: ThreadPoolExecutor.map(lua_fn, ...),
** run_coroutine_threadsafe(...).result()), another thread runs a Lua call
** itself, on a Lua thread of its own, holding the GIL throughout: every
** thread that runs Lua then holds the GIL, so Lua runs on one thread at a
** time.  The main thread goes back to running Lua without the GIL only once
** no such call is active (pya__wait_borrows).  See docs/threading.md. */

static char BORROW_MARK;              /* extra space of a borrowing thread */
static char ANCHOR_KEY;               /* registry: the thread that makes them */
#define NFREE 8
static lua_State *free_threads[NFREE];  /* idle Lua threads, GIL-protected */
static int free_refs[NFREE], nfree;
static __thread int borrow_depth;     /* Lua calls this thread runs now */
static pthread_cond_t borrow_cv = PTHREAD_COND_INITIALIZER;
static unsigned borrow_gen;           /* under call_mu */

int pya__borrowing(lua_State *L) {
  return *(void **)lua_getextraspace(L) == &BORROW_MARK;
}

int pya__on_lua_side(void) { return pya__ismain() || borrow_depth > 0; }

/* A Lua thread for one call (GIL held, so no other thread runs Lua). */
static lua_State *borrow_thread(int *ref) {
  if (nfree > 0) {
    nfree--;
    *ref = free_refs[nfree];
    return free_threads[nfree];
  }
  lua_State *anchor = NULL;
  lua_State *M = pya__rt.mainL;
  if (lua_rawgetp(M, LUA_REGISTRYINDEX, &ANCHOR_KEY) == LUA_TTHREAD) anchor = lua_tothread(M, -1);
  lua_pop(M, 1);
  if (!anchor) {  /* main's own stack is in use: threads are made on this one */
    anchor = lua_newthread(M);
    lua_rawsetp(M, LUA_REGISTRYINDEX, &ANCHOR_KEY);
  }
  lua_State *T = lua_newthread(anchor);
  *(void **)lua_getextraspace(T) = &BORROW_MARK;
  *ref = luaL_ref(anchor, LUA_REGISTRYINDEX);
  return T;
}

static void return_thread(lua_State *T, int ref) {
  if (nfree < NFREE) {
    free_threads[nfree] = T;
    free_refs[nfree++] = ref;
  } else luaL_unref(T, LUA_REGISTRYINDEX, ref);
}

static PyObject *call_borrowed(LuaFunc *self, PyObject *const *args, Py_ssize_t n,
                               PyObject *kwnames) {
  int ref;
  pya__rt.active_borrows++;
  borrow_depth++;
  lua_State *T = borrow_thread(&ref);
  PyObject *r = call_on(T, self->ref, args, n, kwnames);
  return_thread(T, ref);
  borrow_depth--;
  if (--pya__rt.active_borrows == 0 && pya__rt.main_returning) {
    pthread_mutex_lock(&call_mu);
    borrow_gen++;
    pthread_cond_broadcast(&borrow_cv);
    pthread_mutex_unlock(&call_mu);
  }
  return r;
}

/* Main thread, GIL held, about to run Lua without the GIL: waits until no
** other thread runs a Lua call.  New calls may still start meanwhile only
** from inside an active one (a borrowed call whose Python waits for them):
** the others are posted to the main thread. */
void pya__wait_borrows(void) {
  pya__rt.main_returning = 1;
  while (pya__rt.active_borrows) {
    pthread_mutex_lock(&call_mu);
    unsigned gen = borrow_gen;
    PyThreadState *ts = PyEval_SaveThread();
    while (gen == borrow_gen) pthread_cond_wait(&borrow_cv, &call_mu);
    pthread_mutex_unlock(&call_mu);
    PyEval_RestoreThread(ts);
  }
  pya__rt.main_returning = 0;
}

static PyObject *luafunc_vectorcall(PyObject *self, PyObject *const *args,
                                    size_t nargsf, PyObject *kwnames) {
  Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  LuaFunc *f = (LuaFunc *)self;
  if (pya__rt.closing) {
    PyErr_SetString(PyExc_RuntimeError, "pyasync is shut down: cannot call Lua");
    return NULL;
  }
  if (pya__ismain()) return call_here(f->ref, args, n, kwnames);
  if (can_borrow()) return call_borrowed(f, args, n, kwnames);  /* GIL held */
  return call_remote(f, args, n, kwnames);
}

static void luafunc_dealloc(PyObject *self) {
  pya__defer_unref(((LuaFunc *)self)->ref);
  Py_TYPE(self)->tp_free(self);
}

static PyObject *luafunc_repr(PyObject *self) {
  return PyUnicode_FromFormat("<Lua function %d>", ((LuaFunc *)self)->ref);
}

static PyTypeObject LuaFunc_Type = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "pyasync.LuaFunction",
  .tp_basicsize = sizeof(LuaFunc),
  .tp_dealloc = luafunc_dealloc,
  .tp_repr = luafunc_repr,
  .tp_call = PyVectorcall_Call,
  .tp_vectorcall_offset = offsetof(LuaFunc, vectorcall),
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
  .tp_doc = "A Lua function callable from Python.",
};

PyObject *pya__wrapfunc(lua_State *L, int idx) {
  LuaFunc *f = PyObject_New(LuaFunc, &LuaFunc_Type);
  if (!f) return NULL;
  lua_pushvalue(L, idx);
  f->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  f->vectorcall = luafunc_vectorcall;
  return (PyObject *)f;
}

int pya__iswrapped(PyObject *o) { return Py_TYPE(o) == &LuaFunc_Type; }

int pya__pushwrapped(lua_State *L, PyObject *o) {
  if (Py_TYPE(o) != &LuaFunc_Type) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ((LuaFunc *)o)->ref);
  return 1;
}

/* --- helper module hooks -------------------------------------------------- */

static PyObject *h_unref(PyObject *self, PyObject *arg) {
  (void)self;
  long r = PyLong_AsLong(arg);
  if (r == -1 && PyErr_Occurred()) return NULL;
  pya__defer_unref((int)r);
  Py_RETURN_NONE;
}

/* _post_lua(f, *args): f(*args) on the main thread when it next polls;
** returns at once (for py.async_fn, so the loop never waits on Lua). */
static PyObject *h_post_lua(PyObject *self, PyObject *const *args, Py_ssize_t n) {
  (void)self;
  if (n < 1 || Py_TYPE(args[0]) != &LuaFunc_Type)
    return PyErr_Format(PyExc_TypeError, "_post_lua(luafunction, *args)");
  pya_Comp *c = calloc(1, sizeof *c);
  if (!c) return PyErr_NoMemory();
  c->kind = PYA_C_CALL;
  c->nowait = 1;
  c->func = args[0];
  Py_INCREF(args[0]);
  c->value = PyTuple_New(n - 1);
  if (!c->value) { Py_DECREF(c->func); free(c); return NULL; }
  for (Py_ssize_t i = 1; i < n; i++) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(c->value, i - 1, args[i]);
  }
  c->id = n - 1;
  pya__post_call(c);
  Py_RETURN_NONE;
}

static PyMethodDef helper_methods[] = {
  {"_unref", h_unref, METH_O, NULL},
  {"_post_lua", (PyCFunction)(void (*)(void))h_post_lua, METH_FASTCALL, NULL},
  {NULL, NULL, 0, NULL}};

int pya__call_init(PyObject *helper) {
  if (PyType_Ready(&LuaFunc_Type) < 0) return -1;
  if (PyModule_AddObjectRef(helper, "LuaFunction", (PyObject *)&LuaFunc_Type) < 0)
    return -1;
  return PyModule_AddFunctions(helper, helper_methods);
}
