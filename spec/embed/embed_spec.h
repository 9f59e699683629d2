/*
** embed_spec.h - what the C specs of the embedding API share (spec/embed,
** cmake/embed_tests.cmake): TAP-style checks, a Lua state with pyasync,
** protected helpers, and the frame loop of examples/embed/host.c, measured.
** Each spec is one program built against the installed library.
*/
#ifndef EMBED_SPEC_H
#define EMBED_SPEC_H

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pyasync.h>

#define FRAME_MS (1000.0 / 60.0)

static int spec_failures, spec_count;

static inline void check_(int ok, const char *expr, int line, const char *fmt, ...) {
  va_list ap;
  printf("%s %d - ", ok ? "ok" : "not ok", ++spec_count);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  if (!ok) {
    spec_failures++;
    printf("#   line %d: %s\n", line, expr);
  }
  fflush(stdout);
}
#define CHECK(cond, ...) check_(!!(cond), #cond, __LINE__, __VA_ARGS__)

static inline int spec_done(void) {
  printf("1..%d\n", spec_count);
  if (spec_failures) printf("# %d of %d failed\n", spec_failures, spec_count);
  return spec_failures ? 1 : 0;
}

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A hang is a failure too: the spec ends after `seconds`. */
static inline void on_alarm(int sig) {
  static const char msg[] = "not ok - timed out: something hung\n";
  (void)sig;
  if (write(1, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(3);
}
static inline void spec_timeout(unsigned seconds) {
  signal(SIGALRM, on_alarm);
  alarm(seconds);
}

static inline lua_State *spec_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  pyasync_preload(L);
  return L;
}

static inline int tostring_k(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}
/* tostring(value at idx) in protected mode, into buf. */
static inline const char *spec_tostring(lua_State *L, int idx, char *buf, size_t n) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tostring_k);
  lua_pushvalue(L, idx);
  const char *s = lua_pcall(L, 1, 1, 0) == LUA_OK ? lua_tostring(L, -1) : NULL;
  snprintf(buf, n, "%s", s ? s : "(tostring failed)");
  lua_pop(L, 1);
  return buf;
}

/* Runs src outside any task; returns whether it ran without error. */
static inline int spec_dostring(lua_State *L, const char *src) {
  char buf[512];
  if (luaL_dostring(L, src) == LUA_OK) return 1;
  printf("# error: %s\n", spec_tostring(L, -1, buf, sizeof buf));
  lua_pop(L, 1);
  return 0;
}

/* Starts chunk src as a task with pyasync_spawn; returns its status. */
static inline int spec_spawn(lua_State *L, const char *src) {
  int st = luaL_loadstring(L, src);
  if (st == LUA_OK) st = pyasync_spawn(L, 0);
  if (st != LUA_OK) {
    char buf[512];
    printf("# spawn: %s\n", spec_tostring(L, -1, buf, sizeof buf));
    lua_pop(L, 1);
  }
  return st;
}

/* The value of global `name` as an integer (LUA_MININTEGER if not one). */
static inline lua_Integer spec_int(lua_State *L, const char *name) {
  lua_getglobal(L, name);
  lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : LUA_MININTEGER;
  lua_pop(L, 1);
  return v;
}

/* What spec_loop saw. */
typedef struct {
  long frames;         /* frames ticked (global `frames` in Lua) */
  long steps;          /* pyasync_step calls */
  long errors;         /* of them, -1 returns (errors printed) */
  double max_step_ms;  /* the longest pyasync_step */
  int live;            /* its last count of live tasks */
} Loop;

/* The host loop of examples/embed/host.c: step; tick a frame (setting the
** global `frames`) when one is due; sleep in poll() on pyasync_fd until
** the next frame or pyasync_timeout.  Until no task is live or limit_ms
** has passed; returns whether the tasks finished. */
static inline int spec_loop(lua_State *L, Loop *lp, double limit_ms) {
  int fd = pyasync_fd(L);
  double start = now_ms(), next = start + FRAME_MS;
  for (;;) {
    double t0 = now_ms();
    int live = pyasync_step(L);
    double dt = now_ms() - t0;
    lp->steps++;
    if (dt > lp->max_step_ms) lp->max_step_ms = dt;
    if (live < 0) {
      char buf[512];
      printf("# task error: %s\n", spec_tostring(L, -1, buf, sizeof buf));
      lua_pop(L, 1);
      lp->errors++;
      continue;
    }
    lp->live = live;
    if (live == 0) return 1;
    double now = now_ms();
    if (now - start > limit_ms) return 0;
    if (now >= next) {
      lua_pushinteger(L, ++lp->frames);
      lua_setglobal(L, "frames");
      next += FRAME_MS;
      if (next < now) next = now + FRAME_MS;
    }
    int ms = (int)(next - now_ms()) + 1;
    if (ms < 0) ms = 0;
    int t = pyasync_timeout(L);
    if (t >= 0 && t < ms) ms = t;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, ms);
  }
}

/* poll(fd, ms): 1 if readable, 0 if it stayed quiet. */
static inline int spec_readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) > 0 && (p.revents & POLLIN);
}

#endif
