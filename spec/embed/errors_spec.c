/*
** errors_spec.c - a task started with pyasync_spawn that fails reaches the
** host as pyasync_step returning -1 with the error on top of the stack:
** the value raised (a Lua string, a PyError), one task per step, oldest
** first; tasks that Lua spawned are not the host's to hear about; a value
** that is not a function is refused by pyasync_spawn itself.
*/
#include "embed_spec.h"

/* Steps (frames as spec_loop, no frame counting) until pyasync_step
** returns -1, leaving the error on the stack; 0 if it never does. */
static int step_until_error(lua_State *L, double limit_ms) {
  int fd = pyasync_fd(L);
  double end = now_ms() + limit_ms;
  while (now_ms() < end) {
    int live = pyasync_step(L);
    if (live < 0) return 1;
    if (live == 0) return 0;
    int t = pyasync_timeout(L);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, t >= 0 && t < 17 ? t : 17);
  }
  return 0;
}

static int has(lua_State *L, int idx, const char *want) {
  char buf[1024];
  int ok = strstr(spec_tostring(L, idx, buf, sizeof buf), want) != NULL;
  if (!ok) printf("# got: %s\n", buf);
  return ok;
}

int main(void) {
  char buf[512];
  spec_timeout(60);
  lua_State *L = spec_state();
  CHECK(spec_dostring(L,
    "py = require 'pyasync'\n"
    "py.exec[[\n"
    "import asyncio\n"
    "async def bad(msg):\n"
    "    await asyncio.sleep(0.05)\n"
    "    raise ValueError(msg)\n"
    "]]\n"), "setup");

  /* a Lua error, after an await */
  CHECK(spec_spawn(L, "py.sleep(0.02); error('boom in a task')") == LUA_OK, "spawn a failing task");
  int top = lua_gettop(L);
  CHECK(step_until_error(L, 10000), "pyasync_step returns -1");
  CHECK(lua_gettop(L) == top + 1, "with one value pushed");
  CHECK(lua_type(L, -1) == LUA_TSTRING && has(L, -1, "boom in a task"),
        "the Lua error raised: %s", spec_tostring(L, -1, buf, sizeof buf));
  lua_pop(L, 1);
  CHECK(pyasync_step(L) == 0, "the next step returns the live count again (0)");

  /* a Python exception from an awaited coroutine */
  CHECK(spec_spawn(L, "py.await(py.main.bad('bad value'))") == LUA_OK, "spawn a task awaiting a failing coroutine");
  CHECK(step_until_error(L, 10000), "pyasync_step returns -1");
  lua_setglobal(L, "err");
  CHECK(spec_dostring(L, "assert(py.iserror(err, 'ValueError'), tostring(err))\n"
                         "assert(err.message == 'bad value', err.message)"),
        "the error is the PyError raised (type ValueError, message 'bad value')");

  /* two failures: one per step, oldest first */
  CHECK(spec_spawn(L, "error('first')") == LUA_OK, "spawn a first failing task");
  CHECK(spec_spawn(L, "error('second')") == LUA_OK, "spawn a second failing task");
  CHECK(spec_spawn(L, "py.sleep(0.05)") == LUA_OK, "and one that succeeds");
  CHECK(pyasync_step(L) == -1 && has(L, -1, "first"), "the first step reports the first task");
  lua_pop(L, 1);
  CHECK(pyasync_step(L) == -1 && has(L, -1, "second"), "the next step reports the second");
  lua_pop(L, 1);
  CHECK(pyasync_step(L) == 1, "then the live count (the sleeping task)");
  Loop lp = {0};
  CHECK(spec_loop(L, &lp, 10000) && lp.errors == 0, "it finishes without an error");

  /* a task Lua spawned and nobody awaits is not the host's */
  CHECK(spec_spawn(L, "py.spawn(function() error('not for the host') end); py.sleep(0.02)") == LUA_OK,
        "spawn a task whose child fails");
  Loop lp2 = {0};
  CHECK(spec_loop(L, &lp2, 10000) && lp2.errors == 0, "pyasync_step never returns -1 for the child");

  /* refused at once */
  top = lua_gettop(L);
  lua_pushinteger(L, 42);
  lua_pushinteger(L, 1);
  int st = pyasync_spawn(L, 1);
  CHECK(st != LUA_OK, "pyasync_spawn of a number fails (%d)", st);
  CHECK(lua_gettop(L) == top + 1 && has(L, -1, "function expected"),
        "with the error in place of the value and its argument");
  lua_pop(L, 1);

  CHECK(lua_gettop(L) == 0, "the stack is as it was");
  lua_close(L);  /* reports the child's failure on stderr */
  return spec_done();
}
