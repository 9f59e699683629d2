# Every spec/*_spec.lua runs twice: inside the host binary and under stock
# lua5.4 loading build/pyasync.so.  Each example runs with its expected
# output checked (examples/*.expected).
find_program(LUA54 lua5.4 REQUIRED)
find_program(BUSTED busted PATHS /usr/bin REQUIRED)
set(SPEC_LUA_PATH "${CMAKE_SOURCE_DIR}/lua/?.lua;${CMAKE_SOURCE_DIR}/lua/?/init.lua;${CMAKE_SOURCE_DIR}/spec/?.lua;;")
set(SPEC_LUA_CPATH "${CMAKE_BINARY_DIR}/?.so;;")
# ENVIRONMENT is a CMake list: the path separators must be escaped.
string(REPLACE ";" "\\;" SPEC_LUA_PATH "${SPEC_LUA_PATH}")
string(REPLACE ";" "\\;" SPEC_LUA_CPATH "${SPEC_LUA_CPATH}")
set(SPEC_ENV
  "LUA_PATH=${SPEC_LUA_PATH}" "LUA_CPATH=${SPEC_LUA_CPATH}"
  "PYASYNC_BUILD=${CMAKE_BINARY_DIR}" "PYASYNC_SOURCE=${CMAKE_SOURCE_DIR}")

file(GLOB SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/*_spec.lua)
foreach(spec ${SPECS})
  get_filename_component(name ${spec} NAME_WE)
  string(REGEX REPLACE "_spec$" "" name ${name})
  add_test(NAME host:${name}
    COMMAND ${CMAKE_BINARY_DIR}/pyasync ${BUSTED} -o TAP ${spec}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME lua:${name}
    COMMAND ${LUA54} ${BUSTED} -o TAP ${spec}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(host:${name} PROPERTIES
    ENVIRONMENT "${SPEC_ENV};PYASYNC_MODE=host" TIMEOUT 300)
  set_tests_properties(lua:${name} PROPERTIES
    ENVIRONMENT "${SPEC_ENV};PYASYNC_MODE=lua" TIMEOUT 300)
endforeach()

file(GLOB EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*.lua)
foreach(ex ${EXAMPLES})
  get_filename_component(name ${ex} NAME_WE)
  add_test(NAME example:${name}
    COMMAND ${CMAKE_COMMAND} -DBIN=${CMAKE_BINARY_DIR}/pyasync -DSCRIPT=${ex}
            -P ${CMAKE_SOURCE_DIR}/cmake/run_example.cmake
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(example:${name} PROPERTIES ENVIRONMENT "${SPEC_ENV}" TIMEOUT 120)
endforeach()

# The rockspec builds and installs into a tree the module loads from.
add_test(NAME rockspec:make COMMAND ${CMAKE_SOURCE_DIR}/tools/luarocks-test.sh)
set_tests_properties(rockspec:make PROPERTIES TIMEOUT 600)

# Sanitizer, valgrind and fuzzing runs (cmake/reliability.cmake).
if(EXISTS ${CMAKE_SOURCE_DIR}/cmake/reliability.cmake)
  include(${CMAKE_SOURCE_DIR}/cmake/reliability.cmake)
endif()
