/*
** embed.c - hosts that drive pyasync from their own event loop (API.md
** section 9, docs/embedding.md): pyasync_spawn starts a task, pyasync_step
** runs what is ready without waiting, and pyasync_fd and pyasync_timeout
** tell the host's poll() when to step again.  The scheduling is in
** lua/pyasync/embed.lua; this file keeps the libuv loop's backend fd
** truthful: readable whenever a step has something to do.
*/
#include "pyasync_int.h"

static char EMBED_KEY;  /* registry: the pyasync.embed table, once opened */
static int have_loop;   /* pyasync is open: its libuv loop exists */
static int stepping;    /* inside pyasync_step, which must not nest */

/* Opens pyasync in L (unless the host did) and then pyasync.embed. */
static int open_k(lua_State *L) {
  luaL_requiref(L, "pyasync", luaopen_pyasync, 0);
  have_loop = 1;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "pyasync.embed");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "open");
  pya__ref_completions(1);  /* the loop must be alive to poll once */
  lua_call(L, 0, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &EMBED_KEY);
  return 0;
}

/* Pushes the pyasync.embed table, opening it first if L has not; returns
** 0, or a lua_pcall status with the error pushed instead.  Also makes room
** for what the callers push (it fails only at LUAI_MAXSTACK). */
static int push_embed(lua_State *L) {
  (void)lua_checkstack(L, 6);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &EMBED_KEY) == LUA_TTABLE) return 0;
  lua_pop(L, 1);
  lua_pushcfunction(L, open_k);
  int st = lua_pcall(L, 0, 0, 0);
  if (have_loop) pya__ref_completions(0);
  if (st != LUA_OK) return st;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &EMBED_KEY);
  return 0;
}

/* Pushes field k of the embed table (its functions: no metamethods). */
static int push_fn(lua_State *L, const char *k) {
  int st = push_embed(L);
  if (st != LUA_OK) return st;
  lua_getfield(L, -1, k);
  lua_remove(L, -2);
  return LUA_OK;
}

PYASYNC_API int pyasync_spawn(lua_State *L, int nargs) {
  int fn = lua_gettop(L) - nargs;  /* the function, then its arguments */
  int st = push_fn(L, "spawn");
  if (st != LUA_OK) {  /* like lua_pcall: only the error stays */
    lua_replace(L, fn);
    lua_settop(L, fn);
    return st;
  }
  lua_insert(L, fn);
  st = lua_pcall(L, nargs + 1, 0, 0);
  if (st == LUA_OK) pya__wake_main();  /* a task is ready: the fd says so */
  return st;
}

/* With the completion handle referenced, the non-blocking uv_run of the
** step sees a live loop, so it polls and reads the wake-ups that made the
** fd readable (an idle loop would return at once and leave them there).
** Afterwards the main thread is armed again: a nested blocking wait, if a
** task made one, disarms it on its way out. */
PYASYNC_API int pyasync_step(lua_State *L) {
  if (stepping) {
    lua_pushliteral(L, "pyasync_step: called from inside pyasync_step");
    return -1;
  }
  int top = lua_gettop(L);
  if (push_fn(L, "step") != LUA_OK) return -1;
  stepping = 1;
  pya__ref_completions(1);
  int st = lua_pcall(L, 0, 3, 0);  /* ready, live | ready, false, err */
  pya__ref_completions(0);
  stepping = 0;
  pya__main_arm();
  if (st != LUA_OK) return -1;
  if (lua_toboolean(L, top + 1)) pya__wake_main();  /* tasks left ready */
  if (lua_isinteger(L, top + 2)) {
    int n = (int)lua_tointeger(L, top + 2);
    lua_settop(L, top);
    return n;
  }
  lua_replace(L, top + 1);  /* the failed task's error */
  lua_settop(L, top + 1);
  return -1;
}

PYASYNC_API int pyasync_fd(lua_State *L) {
  if (push_embed(L) != LUA_OK) { lua_pop(L, 1); return -1; }
  lua_pop(L, 1);
  pya__main_arm();
  return uv_backend_fd(pya__uvloop());
}

/* 0 when a step has work now (ready tasks, queued completions or calls),
** else libuv's: the next timer (py.sleep, timeouts, luv's), or -1. */
PYASYNC_API int pyasync_timeout(lua_State *L) {
  if (push_fn(L, "has_ready") != LUA_OK) { lua_pop(L, 1); return -1; }
  int ready = lua_pcall(L, 0, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (ready) { pya__wake_main(); return 0; }
  if (pya__main_arm()) return 0;
  uv_loop_t *loop = pya__uvloop();
  uv_update_time(loop);  /* the host may have run a while since the step */
  pya__ref_completions(1);  /* an idle loop's backend timeout is 0 */
  int ms = uv_backend_timeout(loop);
  pya__ref_completions(0);
  return ms;
}
