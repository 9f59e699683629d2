-- luarocks make (from a clone) builds the C module against the system's
-- Lua 5.4 and Python and installs it with lua/pyasync into the tree.
rockspec_format = "3.0"
package = "pyasync"
version = "scm-1"
source = {
  url = "git+https://example.invalid/pyasync.git",
}
description = {
  summary = "Python's async world for Lua 5.4: await coroutines, stream async generators, share memory",
  detailed = [[
pyasync embeds CPython in Lua 5.4.  Python coroutines are awaited from Lua
coroutines, async generators are Lua for-iterators whose early exit runs
aclose(), cancellation reaches Python, and buffers and DLPack tensors are
shared without copying.]],
  license = "MIT",
  labels = {"python", "async", "ffi", "libuv"},
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_C_FLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    BINDIR = "$(BINDIR)",
    PYASYNC_TESTS = "OFF",
    PYASYNC_INSTALL_DEV = "OFF",
  },
}
