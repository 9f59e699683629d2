/*
** pyasync.h - the C API for embedding pyasync in another C host.
** pyasync embeds CPython in a Lua 5.4 state and bridges Python's asyncio
** world to Lua coroutines.  See docs/reference.md for the Lua API.
*/
#ifndef PYASYNC_H
#define PYASYNC_H

#include <lua.h>

#if defined(_WIN32)
#define PYASYNC_API __declspec(dllexport)
#else
#define PYASYNC_API __attribute__((visibility("default")))
#endif

#define PYASYNC_VERSION "0.1.0"

/* --- opening ------------------------------------------------------------ */

/* Pushes the pyasync module table (what require "pyasync" returns).
** Initializes Python on first use unless it is already initialized. */
PYASYNC_API int luaopen_pyasync(lua_State *L);

/* The C core alone (require "pyasync.core"); lua/pyasync/init.lua wraps it. */
PYASYNC_API int luaopen_pyasync_core(lua_State *L);

/* Registers pyasync in package.preload so that require "pyasync" works
** without any LUA_PATH or LUA_CPATH. */
PYASYNC_API void pyasync_preload(lua_State *L);

/* --- running ------------------------------------------------------------ */

/* Calls the function below the nargs arguments on top of the stack as a
** pyasync task (so it may yield in py.await) and drives the event loop until
** it and every task it spawned have finished.  Returns a lua_pcall status;
** on error the error value is on the stack, otherwise nresults values
** (LUA_MULTRET allowed). */
PYASYNC_API int pyasync_runtask(lua_State *L, int nargs, int nresults);

/* Cancels the running main task (for a SIGINT handler: async-signal-safe). */
PYASYNC_API void pyasync_interrupt(void);

/* Cancels outstanding Python tasks, closes async generators, stops the loop
** thread and finalizes Python if pyasync initialized it.  lua_close calls
** this through the module's __gc; calling it earlier is allowed. */
PYASYNC_API void pyasync_shutdown(lua_State *L);

/* --- hosts with their own event loop --------------------------------------
** A host that runs its own loop (a game's frame loop, a GUI toolkit, an
** epoll server) starts tasks with pyasync_spawn and calls pyasync_step
** whenever pyasync_fd is readable or pyasync_timeout milliseconds have
** passed; none of the four waits.  Each opens pyasync in L on first use (so
** pyasync_preload is needed only for scripts that require "pyasync").
** Call them from the thread that opened pyasync in L.  Installed with
** libpyasync.so and pyasync.pc; see docs/embedding.md. */

/* Starts the function below the nargs arguments on top of the stack as a
** pyasync task (it may py.await, py.sleep, use py.aiter and queues) and
** returns at once, with the function and arguments popped.  Returns LUA_OK,
** or an error status with the error on the stack (pyasync failed to open,
** or the value is not callable). */
PYASYNC_API int pyasync_spawn(lua_State *L, int nargs);

/* Runs what is ready -- tasks to resume, completions from Python, due
** timers, calls into Lua from Python threads -- without waiting, and
** returns the number of live Lua tasks.  Returns -1 with an error on top
** of the stack when a task started by pyasync_spawn failed (the value it
** raised; one such task per call, oldest first) or when the step itself
** failed.  With nothing to do it returns at once. */
PYASYNC_API int pyasync_step(lua_State *L);

/* A file descriptor (libuv's backend fd) that is readable whenever
** pyasync_step has something to do, timers aside (see pyasync_timeout).
** Poll it for reading; never read, write or close it.  -1 if pyasync
** cannot be opened. */
PYASYNC_API int pyasync_fd(lua_State *L);

/* Milliseconds until pyasync_step must run even if the fd stays quiet: 0
** when it has work now, the time to pyasync's next timer, or -1 if none.
** Call it right before the host sleeps. */
PYASYNC_API int pyasync_timeout(lua_State *L);

#endif
