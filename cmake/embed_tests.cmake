# C hosts that drive pyasync from their own event loop (API.md section 9,
# docs/embedding.md), built against the INSTALLED library as a user builds
# them (spec/embed/run.sh):
#   embed:install   cmake --install into build/embed-prefix (a fixture)
#   embed:example   examples/embed/host.c running examples/embed/script.lua
#   embed:NAME      each spec/embed/NAME_spec.c, a program of checks
# Each is compiled with cc and `pkg-config --cflags --libs pyasync lua5.4`.
set(EMBED_PREFIX ${CMAKE_BINARY_DIR}/embed-prefix)
set(EMBED_OUT ${CMAKE_BINARY_DIR}/embed-bin)
set(EMBED_RUN sh ${CMAKE_SOURCE_DIR}/spec/embed/run.sh)
if(NOT PYASYNC_INSTALL_DEV)
  return()  # nothing to build against
endif()
if(PYASYNC_SANITIZE)
  return()  # a plain cc host cannot load a sanitized library
endif()
if(IS_ABSOLUTE "${PYASYNC_PCDIR}")
  message(STATUS "embed tests: absolute pkgconfig dir ${PYASYNC_PCDIR}, not relocatable: skipped")
  return()
endif()
set(EMBED_PCDIR ${EMBED_PREFIX}/${PYASYNC_PCDIR})

add_test(NAME embed:install
  COMMAND ${EMBED_RUN} install ${CMAKE_COMMAND} ${CMAKE_BINARY_DIR} ${EMBED_PREFIX})
set_tests_properties(embed:install PROPERTIES FIXTURES_SETUP embed_prefix TIMEOUT 120)

add_test(NAME embed:example
  COMMAND ${EMBED_RUN} host ${EMBED_PCDIR} ${EMBED_OUT}/host
          ${CMAKE_SOURCE_DIR}/examples/embed/host.c script.lua
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/examples/embed)
set_tests_properties(embed:example PROPERTIES
  ENVIRONMENT "EMBED_EXPECT=done: [1-9][0-9]* frames ticked"
  FIXTURES_REQUIRED embed_prefix TIMEOUT 120)

file(GLOB EMBED_SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/embed/*_spec.c)
foreach(spec ${EMBED_SPECS})
  get_filename_component(name ${spec} NAME_WE)
  string(REGEX REPLACE "_spec$" "" name ${name})
  add_test(NAME embed:${name}
    COMMAND ${EMBED_RUN} host ${EMBED_PCDIR} ${EMBED_OUT}/${name}_spec ${spec}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(embed:${name} PROPERTIES FIXTURES_REQUIRED embed_prefix TIMEOUT 120)
endforeach()
