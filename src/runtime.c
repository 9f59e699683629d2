/*
** runtime.c - the one pyasync runtime of the process: starting and
** finalizing Python, the main thread's GIL, and the deferred-release list
** that lets Lua's __gc and Python deallocs off the main thread drop
** references without ever waiting for the GIL (DESIGN.md invariant 4).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "pyasync_int.h"

pya_Runtime pya__rt = {.pending_mu = PTHREAD_MUTEX_INITIALIZER};

int pya__ismain(void) {
  return pthread_equal(pthread_self(), pya__rt.main_thread);
}

/* Before waiting in libuv, where luv callbacks and timers run Lua without
** the GIL: no other thread may run Lua meanwhile. */
int pya__gil_suspend(void) {
  int held = pya__rt.gil_held;  /* 2: a host that embeds Python holds it */
  if (!held) return 0;
  if (pya__rt.active_borrows) pya__wait_borrows();
  pya__rt.main_gilfree = 1;
  pya__rt.gil_held = 0;
  pya__rt.main_ts = PyEval_SaveThread();
  return held;
}

void pya__gil_restore(int token) {
  if (!token) return;
  PyEval_RestoreThread(pya__rt.main_ts);
  pya__rt.gil_held = token;
  pya__rt.main_gilfree = 0;
}

/* --- deferred releases ---------------------------------------------------- */

static int grow(void **arr, int *cap, size_t size) {
  int ncap = *cap ? *cap * 2 : 64;
  void *n = realloc(*arr, (size_t)ncap * size);
  if (!n) return 0;
  *arr = n; *cap = ncap;
  return 1;
}

void pya__defer_decref(PyObject *o) {
  pya_Runtime *rt = &pya__rt;
  pthread_mutex_lock(&rt->pending_mu);
  if (rt->npobj < rt->cappobj ||
      grow((void **)&rt->pending_obj, &rt->cappobj, sizeof(PyObject *))) {
    rt->pending_obj[rt->npobj++] = o;
    atomic_fetch_add(&rt->npending, 1);
  }  /* out of memory: leaking one reference beats crashing */
  pthread_mutex_unlock(&rt->pending_mu);
}

void pya__defer_unref(int ref) {
  pya_Runtime *rt = &pya__rt;
  if (ref == LUA_NOREF || ref == LUA_REFNIL) return;
  pthread_mutex_lock(&rt->pending_mu);
  if (rt->npref < rt->cappref ||
      grow((void **)&rt->pending_ref, &rt->cappref, sizeof(int))) {
    rt->pending_ref[rt->npref++] = ref;
    atomic_fetch_add(&rt->npending, 1);
  }
  pthread_mutex_unlock(&rt->pending_mu);
}

/* Called with the GIL held.  Lua references are dropped only on the main
** thread, with a Lua state at hand. */
void pya__drain_pending(lua_State *L) {
  pya_Runtime *rt = &pya__rt;
  PyObject *local[64];
  for (;;) {
    int n = 0;
    pthread_mutex_lock(&rt->pending_mu);
    while (n < 64 && rt->npobj > 0) local[n++] = rt->pending_obj[--rt->npobj];
    if (L && pya__ismain()) {
      while (rt->npref > 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, rt->pending_ref[--rt->npref]);
        atomic_fetch_sub(&rt->npending, 1);
      }
    }
    atomic_fetch_sub(&rt->npending, n);
    if (n == 0 && rt->cappobj > 4096) {
      /* a burst of collections grew it: give the memory back */
      free(rt->pending_obj);
      rt->pending_obj = NULL;
      rt->cappobj = 0;
    }
    pthread_mutex_unlock(&rt->pending_mu);
    if (n == 0) break;
    /* decref outside the lock: a __del__ may defer more releases */
    while (n > 0) Py_DECREF(local[--n]);
  }
}

/* --- starting Python ------------------------------------------------------ */

/* Extension modules (asyncio's _contextvars, numpy) resolve libpython's
** symbols globally; a lua5.4 that dlopen()ed us RTLD_LOCAL hid them. */
static void promote_libpython(void) {
  Dl_info info;
  if (dladdr((void *)&Py_InitializeFromConfig, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
  /* Python keeps pointers into this module (types, method tables) and the
  ** at_exit handler lives here: lua_close must not unmap it. */
  if (dladdr((void *)&promote_libpython, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static const char *python_executable(char *buf, size_t n) {
  const char *venv = getenv("VIRTUAL_ENV");
  if (venv && *venv) {
    snprintf(buf, n, "%s/bin/python", venv);
    return buf;
  }
  return PYASYNC_PYTHON_EXECUTABLE;
}

static int start_python(lua_State *L) {
  PyConfig config;
  char buf[4096];
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  /* SIGINT belongs to the host */
  config.parse_argv = 0;
  PyStatus st = PyConfig_SetBytesString(&config, &config.executable,
                                        python_executable(buf, sizeof buf));
  if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st))
    return luaL_error(L, "pyasync: cannot initialize Python: %s",
                      st.err_msg ? st.err_msg : "unknown error");
  return 0;
}

/* Creates the Python module "pyasync" from helper.py plus the C parts. */
static int setup_helper(void) {
  PyObject *mod = PyImport_AddModule("pyasync");  /* borrowed */
  if (!mod) return -1;
  PyObject *d = PyModule_GetDict(mod);
  if (PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) < 0)
    return -1;
  PyObject *code = Py_CompileString(pya__src_helper_py, "<pyasync/helper.py>",
                                    Py_file_input);
  if (!code) return -1;
  PyObject *r = PyEval_EvalCode(code, d, d);
  Py_DECREF(code);
  if (!r) return -1;
  Py_DECREF(r);
  Py_INCREF(mod);
  pya__rt.helper = mod;
  pya__rt.LuaError = PyDict_GetItemString(d, "LuaError");
  Py_XINCREF(pya__rt.LuaError);
  if (pya__call_init(mod) < 0 || pya__affinity_init(mod) < 0) return -1;
  r = PyObject_CallMethod(mod, "_setup", NULL);  /* needs the C parts */
  Py_XDECREF(r);
  return r ? 0 : -1;
}

static void python_failed(lua_State *L, const char *what) {
  PyObject *exc = pya__fetch_exc();
  PyObject *s = exc ? PyObject_Str(exc) : NULL;
  const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
  lua_pushfstring(L, "pyasync: %s: %s", what, msg ? msg : "unknown error");
  PyErr_Clear();
  Py_XDECREF(s);
  Py_XDECREF(exc);
}

/* os.exit() without closing the state: Python's tasks are still cancelled
** and the interpreter finalized, on the thread that started it. */
static void at_exit(void) {
  if (pya__rt.initialized && !pya__rt.closing && pya__ismain())
    pya__shutdown(pya__rt.mainL);
}

int pya__init(lua_State *L) {
  pya_Runtime *rt = &pya__rt;
  if (rt->initialized) return 0;
  promote_libpython();
  rt->main_thread = pthread_self();
  rt->mainL = L;
  rt->L = L;
  if (Py_IsInitialized()) {
    /* Someone else embeds Python (invariant 10): borrow it. */
    if (PyGILState_Ensure() == PyGILState_UNLOCKED) rt->gil_held = 1;
    else rt->gil_held = 2;  /* the host holds it: never release */
  } else {
    start_python(L);
    rt->owns_python = 1;
    rt->gil_held = 1;
  }
  if (setup_helper() < 0) {
    python_failed(L, "cannot set up the helper module");
    return lua_error(L);
  }
  rt->initialized = 1;
  static int registered;
  if (!registered++) atexit(at_exit);
  if (rt->gil_held == 1) pya__gil_suspend();  /* main now runs Lua GIL-free */
  return 0;
}

/* After finalization nothing drains the lists: drop them and what is left
** on them (stock lua5.4 unloads us next, and their memory would leak). */
static void free_pending(void) {
  pya_Runtime *rt = &pya__rt;
  pthread_mutex_lock(&rt->pending_mu);
  free(rt->pending_obj);
  free(rt->pending_ref);
  rt->pending_obj = NULL;
  rt->pending_ref = NULL;
  rt->npobj = rt->cappobj = rt->npref = rt->cappref = 0;
  atomic_store(&rt->npending, 0);
  pthread_mutex_unlock(&rt->pending_mu);
}

/* Stops the loop thread and finalizes Python on the thread that started it.
** Proxies that outlive this (in a state not yet closed) are left dangling
** on purpose: object.c checks pya__rt.initialized before touching them. */
void pya__shutdown(lua_State *L) {
  pya_Runtime *rt = &pya__rt;
  if (!rt->initialized || rt->closing) return;
  rt->closing = 1;
  int tok = pya__gil_suspend();
  pya__loop_stop();
  pya__gil_restore(tok);
  int took = pya__gil_enter(L);
  pya__drain_pending(NULL);
  if (rt->owns_python && pya__ismain()) {
    Py_CLEAR(rt->helper);
    Py_CLEAR(rt->LuaError);
    rt->initialized = 0;
    rt->gil_held = 0;
    Py_FinalizeEx();
    free_pending();
    return;
  }
  pya__gil_leave(took);
}
