# Reliability runs (docs/reliability.md), included by cmake/tests.cmake:
#   sanitize:asan   every spec in the host binary built with ASan + UBSan
#   sanitize:tsan   every spec in the host binary built with ThreadSanitizer
#   valgrind:sync   the synchronous specs under memcheck, this build's binary
#   fuzz:run        each libFuzzer target for a bounded time (clang only)
# The sanitizer and fuzz runs configure and build their own trees inside this
# one.  They are added to plain builds only: a sanitized build's own ctest
# run is already the check.
if(PYASYNC_SANITIZE)
  return()
endif()

set(REL_TOOLS ${CMAKE_SOURCE_DIR}/tools)
set(REL_FUZZ_SECONDS 30 CACHE STRING "seconds each fuzz target runs in fuzz:run")

# Each takes both cores (it builds, then runs specs whose timing matters).
# They run every spec, also those that talk to the shared servers (the
# ecosystem, storm and exit specs): those fixtures must be up, and the specs
# find them in this tree's fixtures/ (PYASYNC_FIXTURES), not in the
# sanitizer's own tree.
foreach(kind asan tsan)
  add_test(NAME sanitize:${kind}
    COMMAND ${REL_TOOLS}/sanitize.sh ${kind}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(sanitize:${kind} PROPERTIES
    ENVIRONMENT "PYASYNC_SAN_BUILD=${CMAKE_BINARY_DIR}/san-${kind};PYASYNC_FIXTURES=${CMAKE_BINARY_DIR}/fixtures;JOBS=2"
    FIXTURES_REQUIRED "postgres;redis"
    TIMEOUT 1500 PROCESSORS 2)
endforeach()

find_program(VALGRIND valgrind)
if(VALGRIND)
  add_test(NAME valgrind:sync
    COMMAND ${REL_TOOLS}/sanitize.sh valgrind
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(valgrind:sync PROPERTIES
    ENVIRONMENT "PYASYNC_SAN_BUILD=${CMAKE_BINARY_DIR}" TIMEOUT 900)
else()
  message(STATUS "valgrind not found: no valgrind:sync test")
endif()

# libFuzzer needs clang and its runtime (libclang-rt-*-dev): probe once.
find_program(REL_CLANG NAMES clang clang-14)
set(REL_FUZZ_OK FALSE)
if(REL_CLANG)
  set(probe ${CMAKE_BINARY_DIR}/CMakeFiles/fuzz_probe)
  file(WRITE ${probe}.c "#include <stddef.h>\n#include <stdint.h>\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(
    COMMAND ${REL_CLANG} -fsanitize=fuzzer,address,undefined ${probe}.c -o ${probe}
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(rc EQUAL 0)
    set(REL_FUZZ_OK TRUE)
  endif()
endif()
if(REL_FUZZ_OK)
  add_test(NAME fuzz:run
    COMMAND ${REL_TOOLS}/fuzz.sh ${REL_FUZZ_SECONDS}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(fuzz:run PROPERTIES
    ENVIRONMENT "PYASYNC_FUZZ_BUILD=${CMAKE_BINARY_DIR}/fuzz;CC=${REL_CLANG};JOBS=2"
    TIMEOUT 900 SKIP_RETURN_CODE 77)
else()
  message(STATUS "clang with libFuzzer not usable: no fuzz:run test")
endif()
