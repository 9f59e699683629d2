/*
** idle_spec.c - pyasync_step never waits and the fd tells the truth:
** steps with nothing to do return at once; the fd stays quiet while
** nothing is pending (a pending timer is pyasync_timeout's, not the fd's);
** a Python completion, a call into Lua from the loop thread and a ready
** task each make it readable.  Time bounds are loose ("did not block").
*/
#include "embed_spec.h"

#define QUICK_MS 100.0  /* a step that waits nothing takes microseconds */

static double timed_step(lua_State *L, int *ret) {
  double t0 = now_ms();
  *ret = pyasync_step(L);
  return now_ms() - t0;
}

/* Steps, sleeping in poll() on the fd with pyasync_timeout only (no frame
** deadline), until no task is live; counts the steps and the wake-ups
** that came from the fd (not from a timeout). */
static int run_on_fd(lua_State *L, int fd, int *steps, int *fd_wakes) {
  for (int i = 0; i < 1000; i++) {
    int live = pyasync_step(L);
    ++*steps;
    if (live <= 0) return live;
    int t = pyasync_timeout(L);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, t >= 0 ? t : 10000) > 0) ++*fd_wakes;
  }
  return 1;
}

int main(void) {
  int r;
  spec_timeout(60);
  lua_State *L = spec_state();

  /* before anything */
  int fd = pyasync_fd(L);
  CHECK(fd >= 0, "pyasync_fd opens pyasync and gives an fd (%d)", fd);
  CHECK(lua_gettop(L) == 0, "and leaves the stack alone");
  CHECK(timed_step(L, &r) < QUICK_MS && r == 0, "a step with no task returns 0 at once");
  CHECK(pyasync_timeout(L) == -1, "no timer: pyasync_timeout is -1");
  CHECK(!spec_readable(fd, 50), "the fd is quiet");
  CHECK(spec_dostring(L,
    "py = require 'pyasync'\n"
    "py.exec[[\n"
    "import asyncio\n"
    "async def nap(s, x):\n"
    "    await asyncio.sleep(s)\n"
    "    return x\n"
    "async def call_lua(cb, x):\n"
    "    await asyncio.sleep(0.02)\n"
    "    return cb(x)\n"   /* cb runs on the main thread: posted there */
    "]]\n"), "setup");

  /* a ready task makes the fd readable and the timeout 0 (py.sleep(0)
  ** wakes in the same step's poll; a step runs two rounds, so the third
  ** wake-up is left for the next step) */
  CHECK(spec_spawn(L, "py.sleep(0); py.sleep(0); py.sleep(0)") == LUA_OK, "spawn a task that sleeps 0 thrice");
  CHECK(spec_readable(fd, 0), "the fd is readable at once: a task is ready");
  CHECK(pyasync_timeout(L) == 0, "pyasync_timeout is 0");
  CHECK(pyasync_step(L) == 1, "a step runs two rounds of ready tasks and returns");
  CHECK(spec_readable(fd, 0), "the task is ready again: the fd is readable");
  CHECK(pyasync_timeout(L) == 0, "and pyasync_timeout is 0");
  CHECK(pyasync_step(L) == 0, "the next step finishes it");
  CHECK(!spec_readable(fd, 50), "then the fd is quiet again");

  /* a Lua timer: the fd stays quiet, pyasync_timeout says when */
  CHECK(spec_spawn(L, "py.sleep(0.2); slept = 1") == LUA_OK, "spawn a task sleeping 0.2 s");
  CHECK(pyasync_step(L) == 1, "the step starts it");
  int t = pyasync_timeout(L);
  CHECK(t > 0 && t <= 200, "pyasync_timeout is the time to its timer (%d ms)", t);
  CHECK(!spec_readable(fd, 50), "the fd is quiet meanwhile");
  double d1 = timed_step(L, &r), d2 = timed_step(L, &r);
  CHECK(d1 < QUICK_MS && d2 < QUICK_MS && r == 1,
        "two steps in a row with nothing ready return at once (%.2f, %.2f ms)", d1, d2);
  int steps = 0, wakes = 0;
  r = run_on_fd(L, fd, &steps, &wakes);
  CHECK(r == 0 && spec_int(L, "slept") == 1, "it wakes and finishes");
  CHECK(steps <= 20, "in a few steps, sleeping on pyasync_timeout (%d)", steps);

  /* a Python completion wakes the fd; no pyasync timer is involved */
  CHECK(spec_spawn(L, "got = py.await(py.main.nap(0.1, 7))") == LUA_OK, "spawn a task awaiting asyncio.sleep(0.1)");
  CHECK(pyasync_step(L) == 1, "the step submits the await");
  CHECK(pyasync_timeout(L) == -1, "no timer: pyasync_timeout is -1");
  CHECK(spec_readable(fd, 10000), "the completion makes the fd readable");
  CHECK(pyasync_step(L) == 0 && spec_int(L, "got") == 7, "and the next step finishes the task with the result");

  /* a Python coroutine calling a Lua function from the loop thread, which
  ** waits until the main thread has run it */
  CHECK(spec_spawn(L, "called = py.await(py.main.call_lua(function(x) return x * 2 end, 20))") == LUA_OK,
        "spawn a task whose coroutine calls Lua from the loop thread");
  steps = wakes = 0;
  r = run_on_fd(L, fd, &steps, &wakes);
  CHECK(r == 0 && spec_int(L, "called") == 40,
        "the call runs on the host's thread and the task finishes (%d steps)", steps);
  CHECK(wakes > 0, "woken by the fd (%d times)", wakes);

  /* several awaits in a row: each completion wakes the fd at once */
  CHECK(spec_spawn(L, "for i = 1, 20 do assert(py.await(py.main.nap(0, i)) == i) end; seq = 1") == LUA_OK,
        "spawn a task making 20 awaits in a row");
  steps = wakes = 0;
  r = run_on_fd(L, fd, &steps, &wakes);
  CHECK(r == 0 && spec_int(L, "seq") == 1, "they all complete (%d steps, %d fd wake-ups)", steps, wakes);

  /* quiet once everything is over */
  CHECK(pyasync_step(L) == 0 && pyasync_step(L) == 0, "steps with every task done return 0");
  CHECK(pyasync_timeout(L) == -1, "pyasync_timeout is -1");
  CHECK(!spec_readable(fd, 50), "poll(fd, 50 ms) returns 0 after all tasks finished");
  CHECK(lua_gettop(L) == 0, "the stack is as it was");
  lua_close(L);
  return spec_done();
}
