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

#endif
