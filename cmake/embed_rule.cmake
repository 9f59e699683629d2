# pyasync_embed(<var> <root>): a custom command that compiles the Lua and
# Python sources under <root> (every lua/pyasync/*.lua, and src/helper.py)
# into embedded.c (cmake/embed.cmake), so that binaries need no LUA_PATH;
# sets <var> to that file.  Used by the main build and by fuzz/.
function(pyasync_embed var root)
  file(GLOB lua_sources CONFIGURE_DEPENDS ${root}/lua/pyasync/*.lua)
  list(SORT lua_sources)
  set(sources ${lua_sources} ${root}/src/helper.py)
  set(out ${CMAKE_BINARY_DIR}/embedded.c)
  string(REPLACE ";" "," list "${sources}")
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DINPUTS=${list} -P ${root}/cmake/embed.cmake
    DEPENDS ${sources} ${root}/cmake/embed.cmake)
  set(${var} ${out} PARENT_SCOPE)
endfunction()
