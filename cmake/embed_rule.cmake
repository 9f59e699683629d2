# pyasync_embed(<var> <root>): a custom command that compiles the Lua and
# Python sources under <root> into embedded.c (cmake/embed.cmake), so that
# binaries need no LUA_PATH; sets <var> to that file.  Used by the main
# build and by fuzz/.
function(pyasync_embed var root)
  set(sources ${root}/lua/pyasync/init.lua ${root}/src/helper.py)
  set(out ${CMAKE_BINARY_DIR}/embedded.c)
  string(REPLACE ";" "," list "${sources}")
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DINPUTS=${list} -P ${root}/cmake/embed.cmake
    DEPENDS ${sources} ${root}/cmake/embed.cmake)
  set(${var} ${out} PARENT_SCOPE)
endfunction()
