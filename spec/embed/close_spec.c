/*
** close_spec.c - lua_close with tasks in flight shuts pyasync down cleanly:
** no crash, no hang (each scenario runs in a child process with a time
** limit), and the pending Python coroutines are cancelled so that their
** finally blocks run.  Python is once per process, hence the children.
*/
#include <sys/wait.h>

#include "embed_spec.h"

static char marker[256];  /* written by the coroutine's finally */

static const char *setup =
  "py = require 'pyasync'\n"
  "py.exec[[\n"
  "import asyncio\n"
  "async def forever(path):\n"
  "    try:\n"
  "        await asyncio.sleep(3600)\n"
  "    finally:\n"
  "        with open(path, 'w') as f:\n"
  "            f.write('finally ran')\n"
  "async def ticks():\n"
  "    i = 0\n"
  "    while True:\n"
  "        await asyncio.sleep(0.01)\n"
  "        i += 1\n"
  "        yield i\n"
  "]]\n";

/* Tasks that never end by themselves; `forever` gets the marker path. */
static void spawn_all(lua_State *L) {
  luaL_loadstring(L, "py.await(py.main.forever(...))");
  lua_pushstring(L, marker);
  CHECK(pyasync_spawn(L, 1) == LUA_OK, "spawn a task awaiting a coroutine that sleeps an hour");
  CHECK(spec_spawn(L, "py.sleep(3600)") == LUA_OK, "spawn a task in py.sleep(3600)");
  CHECK(spec_spawn(L, "for _ in py.aiter(py.main.ticks()) do end") == LUA_OK,
        "spawn a task iterating an endless async generator");
  CHECK(spec_spawn(L, "local q = py.Queue(); q:get()") == LUA_OK, "spawn a task waiting on an empty queue");
  CHECK(spec_spawn(L, "py.spawn(function() py.sleep(3600) end):await()") == LUA_OK,
        "spawn a task awaiting a task it spawned");
}

static int marker_written(void) {
  char buf[32] = "";
  FILE *f = fopen(marker, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return strcmp(buf, "finally ran") == 0;
}

/* Tasks running for a few frames, then lua_close. */
static void close_in_flight(void) {
  lua_State *L = spec_state();
  CHECK(spec_dostring(L, setup), "setup");
  spawn_all(L);
  Loop lp = {0};
  int finished = spec_loop(L, &lp, 300);
  CHECK(!finished && lp.live == 6, "after 0.3 s of frames all 6 tasks are live (%d)", lp.live);
  CHECK(lp.errors == 0, "none failed");
  lua_close(L);
  CHECK(1, "lua_close returned");
  CHECK(marker_written(), "the pending coroutine was cancelled and its finally ran");
}

/* lua_close right after pyasync_spawn: the tasks never ran. */
static void close_unstarted(void) {
  lua_State *L = spec_state();
  CHECK(spec_dostring(L, setup), "setup");
  spawn_all(L);
  lua_close(L);
  CHECK(1, "lua_close returned");
}

/* pyasync_shutdown first, then more steps, then lua_close. */
static void shutdown_then_step(void) {
  lua_State *L = spec_state();
  CHECK(spec_dostring(L, setup), "setup");
  spawn_all(L);
  for (int i = 0; i < 10; i++) pyasync_step(L), lua_settop(L, 0);
  pyasync_shutdown(L);
  CHECK(1, "pyasync_shutdown returned");
  CHECK(marker_written(), "the pending coroutine's finally ran");
  int r = 0;
  for (int i = 0; i < 10; i++) {  /* errors are fine here; crashes are not */
    r = pyasync_step(L);
    lua_settop(L, 0);
  }
  CHECK(r >= -1, "pyasync_step after the shutdown returns (%d)", r);
  CHECK(pyasync_timeout(L) >= -1 && pyasync_fd(L) >= -1, "so do pyasync_timeout and pyasync_fd");
  lua_close(L);
  CHECK(1, "lua_close returned");
}

/* Runs f in a child with a time limit; returns whether it exited 0. */
static int in_child(void (*f)(void), const char *name) {
  fflush(stdout);
  remove(marker);
  pid_t pid = fork();
  if (pid == 0) {
    spec_timeout(60);
    printf("# %s\n", name);
    f();
    fflush(stdout);
    _exit(spec_failures ? 1 : 0);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) < 0) return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(void) {
  snprintf(marker, sizeof marker, "/tmp/pyasync-embed-close-%ld", (long)getpid());
  int a = in_child(close_in_flight, "lua_close with tasks in flight");
  int b = in_child(close_unstarted, "lua_close before any step");
  int c = in_child(shutdown_then_step, "pyasync_shutdown, then steps");
  remove(marker);
  spec_count = 0;
  CHECK(a, "lua_close with tasks in flight: clean exit");
  CHECK(b, "lua_close before any step: clean exit");
  CHECK(c, "pyasync_shutdown, then steps and lua_close: clean exit");
  return spec_done();
}
