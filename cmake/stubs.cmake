# build/pyasync-stubs (API.md section 10): LuaLS definitions for Python
# modules.  One executable file, made by cmake/stubs_launcher.cmake from
# tools/stubs, that runs the host binary beside it; installed to BINDIR.
set(STUBS_DIR ${CMAKE_SOURCE_DIR}/tools/stubs)
set(STUBS_OUT ${CMAKE_BINARY_DIR}/pyasync-stubs)
add_custom_command(OUTPUT ${STUBS_OUT}
  COMMAND ${CMAKE_COMMAND} -DOUT=${STUBS_OUT} -DSRC=${STUBS_DIR}
          -P ${CMAKE_SOURCE_DIR}/cmake/stubs_launcher.cmake
  DEPENDS ${STUBS_DIR}/pyasync-stubs.lua ${STUBS_DIR}/pyasync_stubs.py
          ${CMAKE_SOURCE_DIR}/cmake/stubs_launcher.cmake
  COMMENT "Writing pyasync-stubs")
add_custom_target(pyasync_stubs ALL DEPENDS ${STUBS_OUT})
add_dependencies(pyasync_stubs pyasync)
install(PROGRAMS ${STUBS_OUT} DESTINATION ${BINDIR})
