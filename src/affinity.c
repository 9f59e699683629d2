/*
** affinity.c - loop affinity (API.md section 5): pyasync's loop is the
** current loop of Python code that Lua calls, and calls from such code
** that schedule work on it are thread-safe and wake it.  The loop class
** (helper._loop_class) gets its scheduling methods from here: on the loop
** thread they are the base class's, straight through; on any other thread
** they go to helper's _foreign_* functions, which hand the work to the loop
** thread through call_soon_threadsafe.  In C, so that code running on the
** loop pays one C call per call_soon and nothing more.
*/
#include "pyasync_int.h"

enum { M_CALL_SOON, M_CALL_LATER, M_CALL_AT, M_ADD_READER, M_ADD_WRITER,
       M_REMOVE_READER, M_REMOVE_WRITER, NMETH };

static const char *const names[NMETH] = {
  "call_soon", "call_later", "call_at", "add_reader", "add_writer",
  "remove_reader", "remove_writer"};

static PyObject *base[NMETH];      /* the base class's functions */
static PyObject *str_context;      /* "context", interned */
static PyObject *foreign[NMETH];   /* helper._foreign_<name>(loop, ...) */
static unsigned long loop_tid;     /* the loop thread, once it runs */

/* f(self, *args, **kw) for the vectorcall arguments of a method. */
static PyObject *forward(PyObject *f, PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames) {
  Py_ssize_t n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  PyObject *stack[8], **a = stack;
  if (n + 1 > 8 && !(a = PyMem_Malloc(sizeof(PyObject *) * (size_t)(n + 1))))
    return PyErr_NoMemory();
  a[0] = self;
  for (Py_ssize_t i = 0; i < n; i++) a[i + 1] = args[i];
  PyObject *r = PyObject_Vectorcall(f, a, (size_t)(nargs + 1), kwnames);
  if (a != stack) PyMem_Free(a);
  return r;
}

/* start_coro (loop.c) runs the first step of a Task it creates at once:
** while it creates the Task, the loop thread's next call_soon(cb,
** context=ctx), the Task scheduling that step, is kept here instead of
** making a Handle for the ready queue that would be popped straight back.
** asyncio's C Task ignores what call_soon returns. */
static int capturing;
static PyObject *cap_cb, *cap_ctx;  /* owned */

void pya__capture_begin(void) { capturing = 1; }

int pya__capture_end(PyObject **cb, PyObject **ctx) {
  capturing = 0;
  *cb = cap_cb;
  *ctx = cap_ctx;
  cap_cb = cap_ctx = NULL;
  return *cb != NULL;
}

static int capture(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs != 1 || nkw > 1) return 0;
  if (nkw && PyTuple_GET_ITEM(kwnames, 0) != str_context &&
      PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), str_context) != 0)
    return 0;
  PyObject *ctx = nkw ? args[1] : Py_None;
  if (ctx != Py_None && !PyContext_CheckExact(ctx)) return 0;
  capturing = 0;
  cap_cb = Py_NewRef(args[0]);
  cap_ctx = ctx == Py_None ? NULL : Py_NewRef(ctx);
  return 1;
}

static PyObject *dispatch(int m, PyObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames) {
  int here = PyThread_get_thread_ident() == loop_tid;
  if (here && capturing && m == M_CALL_SOON && capture(args, nargs, kwnames))
    Py_RETURN_NONE;
  return forward(here ? base[m] : foreign[m], self, args, nargs, kwnames);
}

#define METHOD(name, m)                                                      \
  static PyObject *loop_##name(PyObject *self, PyObject *const *args,        \
                               Py_ssize_t nargs, PyObject *kwnames) {        \
    return dispatch(m, self, args, nargs, kwnames);                          \
  }
METHOD(call_soon, M_CALL_SOON)
METHOD(call_later, M_CALL_LATER)
METHOD(call_at, M_CALL_AT)
METHOD(add_reader, M_ADD_READER)
METHOD(add_writer, M_ADD_WRITER)
METHOD(remove_reader, M_REMOVE_READER)
METHOD(remove_writer, M_REMOVE_WRITER)

#define DEF(name) {#name, (PyCFunction)(void (*)(void))loop_##name, \
                   METH_FASTCALL | METH_KEYWORDS, NULL}
static PyMethodDef loop_defs[NMETH] = {
  DEF(call_soon), DEF(call_later), DEF(call_at), DEF(add_reader),
  DEF(add_writer), DEF(remove_reader), DEF(remove_writer)};

/* _install_affinity(cls, base): cls's scheduling methods become ours. */
static PyObject *a_install(PyObject *self, PyObject *const *args, Py_ssize_t n) {
  (void)self;
  if (n != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1]))
    return PyErr_Format(PyExc_TypeError, "_install_affinity(cls, base)");
  if (!str_context && !(str_context = PyUnicode_InternFromString("context"))) return NULL;
  for (int m = 0; m < NMETH; m++) {
    char fname[40];
    snprintf(fname, sizeof fname, "_foreign_%s", names[m]);
    Py_XSETREF(base[m], PyObject_GetAttrString(args[1], names[m]));
    Py_XSETREF(foreign[m], PyObject_GetAttrString(pya__rt.helper, fname));
    if (!base[m] || !foreign[m]) return NULL;
    PyObject *d = PyDescr_NewMethod((PyTypeObject *)args[0], &loop_defs[m]);
    int bad = !d || PyObject_SetAttrString(args[0], names[m], d) < 0;
    Py_XDECREF(d);
    if (bad) return NULL;
  }
  Py_RETURN_NONE;
}

/* _set_loop_thread(): the calling thread is the loop thread. */
static PyObject *a_set_loop_thread(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  loop_tid = PyThread_get_thread_ident();
  Py_RETURN_NONE;
}

/* _on_lua_side(): this thread runs Lua (main, or a Lua call of its own). */
static PyObject *a_on_lua_side(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  return PyBool_FromLong(pya__on_lua_side());
}

/* _lua_loop(): pyasync's loop, started if it was not (main thread only). */
static PyObject *a_lua_loop(PyObject *self, PyObject *unused) {
  (void)self; (void)unused;
  if (!pya__loop_running()) {
    if (!pya__ismain())
      return PyErr_Format(PyExc_RuntimeError, "pyasync's loop is not running yet");
    if (pya__loop_start() < 0) return NULL;
  }
  return PyObject_GetAttrString(pya__rt.helper, "_loop");
}

static PyMethodDef affinity_methods[] = {
  {"_install_affinity", (PyCFunction)(void (*)(void))a_install, METH_FASTCALL, NULL},
  {"_set_loop_thread", a_set_loop_thread, METH_NOARGS, NULL},
  {"_on_lua_side", a_on_lua_side, METH_NOARGS, NULL},
  {"_lua_loop", a_lua_loop, METH_NOARGS, NULL},
  {NULL, NULL, 0, NULL}};

int pya__affinity_init(PyObject *helper) {
  return PyModule_AddFunctions(helper, affinity_methods);
}

/* core.loop() -> the loop (a proxy), started if it was not. */
static int affinity_loop(lua_State *L) {
  if (pya__rt.closing) return luaL_error(L, "pyasync is shut down");
  int took = pya__gil_enter(L);
  PyObject *loop = a_lua_loop(NULL, NULL);
  if (loop) { pya__pushobj(L, loop); Py_DECREF(loop); }
  else pya__pusherror(L);
  pya__gil_leave(took);
  if (!loop) return lua_error(L);
  return 1;
}

/* core.loop_running() -> whether the loop thread runs (no GIL needed). */
static int affinity_loop_running(lua_State *L) {
  lua_pushboolean(L, pya__loop_running() && !pya__rt.closing);
  return 1;
}

static const luaL_Reg affinity_funcs[] = {
  {"loop", affinity_loop}, {"loop_running", affinity_loop_running}, {NULL, NULL}};

int luaopen_pyasync_affinity(lua_State *L) {
  luaL_setfuncs(L, affinity_funcs, 0);
  return 0;
}
