/*
** frames_spec.c - a host's frame loop keeps ticking while tasks started
** with pyasync_spawn await Python: py.await, py.sleep, py.aiter, queues,
** gather and numpy all work in them, frames tick between a task's start
** and the end of its await, and pyasync_step never holds the frame up.
** Counts, not timing ratios; the only time bound is a very loose one.
*/
#include "embed_spec.h"

static const char *setup =
  "py = require 'pyasync'\n"
  "frames = 0\n"
  "py.exec[[\n"
  "import asyncio\n"
  "async def slow(x, s):\n"
  "    await asyncio.sleep(s)\n"
  "    return x * 2\n"
  "async def gen(n):\n"
  "    for i in range(n):\n"
  "        await asyncio.sleep(0.02)\n"
  "        yield i\n"
  "]]\n"
  /* warm up what a game does at load time: imports, the loop thread */
  "np = py.import 'numpy'\n"
  "assert(py.await(py.main.slow(1, 0)) == 2)\n";

/* The task's frame counts go into globals the C side reads afterwards. */
static const char *script =
  "local f0 = frames\n"
  "await_result = py.await(py.main.slow(21, 0.3))\n"
  "await_frames = frames - f0\n"
  "f0 = frames\n"
  "py.sleep(0.1)\n"
  "sleep_frames = frames - f0\n"
  "local sum = 0\n"
  "for i in py.aiter(py.main.gen(5)) do sum = sum + i end\n"
  "aiter_sum = sum\n"
  "local q = py.Queue(2)\n"
  "py.spawn(function() for i = 1, 5 do q:put(i) end q:close() end)\n"
  "local got = 0\n"
  "for v in q:items() do got = got + v end\n"
  "queue_sum = got\n"
  "local r = py.gather(py.main.slow(1, 0.05), py.main.slow(2, 0.05))\n"
  "gather_sum = r[1] + r[2]\n"
  "numpy_sum = py.builtins.int(np.arange(4):sum())\n"
  "main_done = 1\n";

static const char *worker =
  "local n = ...\n"
  "py.await(py.main.slow(n, 0.2))\n"
  "workers_done = (workers_done or 0) + 1\n";

int main(void) {
  spec_timeout(60);
  lua_State *L = spec_state();
  CHECK(spec_dostring(L, setup), "pyasync, numpy and the loop thread start in the host");
  CHECK(spec_spawn(L, script) == LUA_OK, "pyasync_spawn starts the script as a task");
  for (int i = 0; i < 3; i++) {
    luaL_loadstring(L, worker);
    lua_pushinteger(L, i);
    CHECK(pyasync_spawn(L, 1) == LUA_OK, "pyasync_spawn with an argument (worker %d)", i);
  }
  CHECK(lua_gettop(L) == 0, "pyasync_spawn pops the function and its arguments");

  Loop lp = {0};
  int finished = spec_loop(L, &lp, 20000);
  CHECK(finished, "every task finished (live %d after %ld steps)", lp.live, lp.steps);
  CHECK(lp.errors == 0, "no task failed");
  CHECK(spec_int(L, "main_done") == 1, "the script ran to its end");
  CHECK(spec_int(L, "await_result") == 42, "py.await of a coroutine gives its result");
  CHECK(spec_int(L, "await_frames") > 0,
        "frames ticked while the 0.3 s await was pending (%lld)", (long long)spec_int(L, "await_frames"));
  CHECK(spec_int(L, "sleep_frames") > 0,
        "frames ticked during py.sleep(0.1) (%lld)", (long long)spec_int(L, "sleep_frames"));
  CHECK(spec_int(L, "aiter_sum") == 10, "py.aiter over an async generator");
  CHECK(spec_int(L, "queue_sum") == 15, "a py.Queue between two tasks");
  CHECK(spec_int(L, "gather_sum") == 6, "py.gather");
  CHECK(spec_int(L, "numpy_sum") == 6, "numpy works in a task");
  CHECK(spec_int(L, "workers_done") == 3, "the three workers spawned with arguments finished");
  CHECK(lp.frames > 0, "frames ticked (%ld)", lp.frames);
  /* a host stuck on a readable fd would step thousands of times a frame */
  CHECK(lp.steps < 20 * lp.frames + 2000, "the loop slept between steps (%ld steps, %ld frames)",
        lp.steps, lp.frames);
  /* 30 frames: a step that waited for an await would take 300 ms */
  CHECK(lp.max_step_ms < 30 * FRAME_MS, "no pyasync_step held the frame up (longest %.1f ms)",
        lp.max_step_ms);
  CHECK(lua_gettop(L) == 0, "the stack is as it was");
  lua_close(L);
  CHECK(1, "lua_close");
  return spec_done();
}
