/*
** host.c - a C program with its own 60 Hz frame loop that runs a Lua
** script whose tasks await Python coroutines while the frames keep ticking
** (docs/embedding.md walks through it).  Against the installed pyasync:
**   cc host.c $(pkg-config --cflags --libs pyasync lua5.4) -o host
**   ./host script.lua
*/
#include <poll.h>
#include <stdio.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pyasync.h>

#define FRAME_MS (1000.0 / 60.0)

static long frames;          /* frames drawn so far */
static double longest_step;  /* ms: pyasync_step never waits */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* host.frame() -> the number of frames drawn so far. */
static int host_frame(lua_State *L) {
  lua_pushinteger(L, frames);
  return 1;
}

/* Prints the error on top of the stack (any value: tostring may run a
** __tostring metamethod, so in protected mode) and pops it. */
static int tostring_k(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}
static void report(lua_State *L, const char *what) {
  lua_pushcfunction(L, tostring_k);
  lua_insert(L, -2);
  const char *msg = lua_pcall(L, 1, 1, 0) == LUA_OK ? lua_tostring(L, -1) : NULL;
  fprintf(stderr, "host: %s: %s\n", what, msg ? msg : "(error object)");
  lua_pop(L, 1);
}

/* One frame of the game: the script's on_frame(n), if it has one, is its
** per-frame update (plain Lua, on this thread, between two steps). */
static void frame(lua_State *L) {
  frames++;
  if (lua_getglobal(L, "on_frame") != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushinteger(L, frames);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) report(L, "on_frame");
}

/* Sleeps until the next frame is due or pyasync has something to do: its
** fd is readable (a Python result came in) or its next timer is due. */
static void wait_until(lua_State *L, int fd, double deadline) {
  double left = deadline - now_ms();
  int ms = left > 0 ? (int)left + 1 : 0;
  int t = pyasync_timeout(L);
  if (t >= 0 && t < ms) ms = t;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  poll(&p, 1, ms);  /* a real host polls its own sources here too */
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : "script.lua";
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  pyasync_preload(L);  /* require "pyasync" in the script */
  lua_newtable(L);
  lua_pushcfunction(L, host_frame);
  lua_setfield(L, -2, "frame");
  lua_setglobal(L, "host");

  /* the script's main chunk is a task: it may py.await at top level */
  if (luaL_loadfile(L, script) != LUA_OK || pyasync_spawn(L, 0) != LUA_OK) {
    report(L, script);
    lua_close(L);
    return 1;
  }
  int fd = pyasync_fd(L), status = 0;
  double next = now_ms() + FRAME_MS;
  for (;;) {
    double t0 = now_ms();
    int live = pyasync_step(L);
    if (now_ms() - t0 > longest_step) longest_step = now_ms() - t0;
    if (live < 0) {  /* a task started with pyasync_spawn failed */
      report(L, "task failed");
      status = 1;
      continue;
    }
    if (live == 0) break;  /* every task has finished */
    double now = now_ms();
    if (now >= next) {
      frame(L);
      next += FRAME_MS;
      if (next < now) next = now + FRAME_MS;  /* fell behind: skip frames */
    }
    wait_until(L, fd, next);
  }
  printf("host: %ld frames, longest pyasync_step %.1f ms\n", frames, longest_step);
  lua_close(L);  /* shuts pyasync down: Python tasks cancelled, Python finalized */
  return status;
}
