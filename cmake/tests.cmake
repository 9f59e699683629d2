# Every spec/*_spec.lua runs twice: inside the host binary and under stock
# lua5.4 loading build/pyasync.so.  Each example runs with its expected
# output checked (examples/*.expected).
#
# A spec declares what it needs in a comment among its first 15 lines:
#   -- fixtures: postgres redis   the shared servers it talks to (any subset):
#                                 ctest starts them first (fixture:*:start)
#                                 and stops them after (fixture:*:stop),
#                                 even when tests fail
#   -- uvloop: yes                a third run, uvloop:NAME, in the host
#                                 binary with PYASYNC_LOOP=uvloop
# Specs find the servers with spec/servers.lua.
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

# Shared servers (tools/fixtures/*.sh): a throwaway PostgreSQL cluster and a
# redis-server, loopback only, free ports.  State (env, info.lua, logs) in
# build/fixtures/KIND; a server that does not start fails its start test
# and every test needing it.  fixture:KIND:status checks it answers.
set(SPEC_FIXTURES postgres redis)
foreach(kind ${SPEC_FIXTURES})
  set(script ${CMAKE_SOURCE_DIR}/tools/fixtures/${kind}.sh)
  set(dir ${CMAKE_BINARY_DIR}/fixtures/${kind})
  add_test(NAME fixture:${kind}:start COMMAND ${script} start ${dir})
  add_test(NAME fixture:${kind}:status COMMAND ${script} status ${dir})
  add_test(NAME fixture:${kind}:stop COMMAND ${script} stop ${dir})
  set_tests_properties(fixture:${kind}:start PROPERTIES FIXTURES_SETUP ${kind} TIMEOUT 120)
  set_tests_properties(fixture:${kind}:status PROPERTIES FIXTURES_REQUIRED ${kind} TIMEOUT 60)
  set_tests_properties(fixture:${kind}:stop PROPERTIES FIXTURES_CLEANUP ${kind} TIMEOUT 120)
endforeach()

# read_header(FILE FIXTURES_VAR UVLOOP_VAR): the header comments of a spec
# or example, among its first 15 lines (editing them reconfigures).
function(read_header file fixtures_var uvloop_var)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${file})
  file(STRINGS ${file} head LIMIT_COUNT 15)
  set(fixtures "")
  set(uvloop FALSE)
  foreach(line IN LISTS head)
    if(line MATCHES "^--[ \t]*fixtures:(.*)$")
      string(REGEX REPLACE "[ \t,]+" ";" wanted "${CMAKE_MATCH_1}")
      foreach(f IN LISTS wanted)
        if(f STREQUAL "")
          continue()
        endif()
        if(NOT f IN_LIST SPEC_FIXTURES)
          message(FATAL_ERROR "${file}: unknown fixture '${f}' (known: ${SPEC_FIXTURES})")
        endif()
        list(APPEND fixtures ${f})
      endforeach()
    elseif(line MATCHES "^--[ \t]*uvloop:[ \t]*yes[ \t]*$")
      set(uvloop TRUE)
    endif()
  endforeach()
  list(REMOVE_DUPLICATES fixtures)
  set(${fixtures_var} "${fixtures}" PARENT_SCOPE)
  set(${uvloop_var} ${uvloop} PARENT_SCOPE)
endfunction()

file(GLOB SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/*_spec.lua)
foreach(spec ${SPECS})
  get_filename_component(name ${spec} NAME_WE)
  string(REGEX REPLACE "_spec$" "" name ${name})
  read_header(${spec} fixtures uvloop)

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
  set(runs host:${name} lua:${name})
  if(uvloop)
    add_test(NAME uvloop:${name}
      COMMAND ${CMAKE_BINARY_DIR}/pyasync ${BUSTED} -o TAP ${spec}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(uvloop:${name} PROPERTIES
      ENVIRONMENT "${SPEC_ENV};PYASYNC_MODE=host;PYASYNC_LOOP=uvloop" TIMEOUT 300)
    list(APPEND runs uvloop:${name})
  endif()
  if(fixtures)
    set_tests_properties(${runs} PROPERTIES FIXTURES_REQUIRED "${fixtures}")
  endif()
endforeach()

# An example declares the shared servers it needs as a spec does
# (`-- fixtures: postgres` among its first 15 lines); run_example.cmake puts
# their build/fixtures/KIND/env (POSTGRES_DSN, REDIS_URL, ...) into its
# environment.
file(GLOB EXAMPLES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*.lua)
foreach(ex ${EXAMPLES})
  get_filename_component(name ${ex} NAME_WE)
  read_header(${ex} fixtures uvloop)
  string(REPLACE ";" "," fixture_arg "${fixtures}")
  add_test(NAME example:${name}
    COMMAND ${CMAKE_COMMAND} -DBIN=${CMAKE_BINARY_DIR}/pyasync -DSCRIPT=${ex}
            -DFIXTURES=${fixture_arg} -DFIXTURES_DIR=${CMAKE_BINARY_DIR}/fixtures
            -P ${CMAKE_SOURCE_DIR}/cmake/run_example.cmake
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(example:${name} PROPERTIES ENVIRONMENT "${SPEC_ENV}" TIMEOUT 120)
  if(fixtures)
    set_tests_properties(example:${name} PROPERTIES FIXTURES_REQUIRED "${fixtures}")
  endif()
endforeach()

# luacheck over lua/ spec/ examples/ (.luacheckrc); missing luacheck fails.
find_program(LUACHECK luacheck)
if(LUACHECK)
  add_test(NAME lint:luacheck
    COMMAND ${LUACHECK} --no-color --codes --config ${CMAKE_SOURCE_DIR}/.luacheckrc
            lua spec examples
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
else()
  add_test(NAME lint:luacheck
    COMMAND sh -c "echo 'lint:luacheck: luacheck not found (apt-get install lua-check, see tools/deps.sh)' >&2; exit 1")
endif()
set_tests_properties(lint:luacheck PROPERTIES TIMEOUT 120)

# The rockspec builds and installs into a tree the module loads from.
add_test(NAME rockspec:make COMMAND ${CMAKE_SOURCE_DIR}/tools/luarocks-test.sh)
set_tests_properties(rockspec:make PROPERTIES TIMEOUT 600)

# Sanitizer, valgrind and fuzzing runs (cmake/reliability.cmake).
if(EXISTS ${CMAKE_SOURCE_DIR}/cmake/reliability.cmake)
  include(${CMAKE_SOURCE_DIR}/cmake/reliability.cmake)
endif()
include(${CMAKE_SOURCE_DIR}/cmake/embed_tests.cmake)  # C hosts with their own loop
