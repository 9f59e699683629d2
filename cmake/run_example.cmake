# Runs SCRIPT with the host binary BIN and compares its stdout with
# SCRIPT's .expected file (same name, .expected instead of .lua).
string(REGEX REPLACE "\\.lua$" ".expected" expected_file ${SCRIPT})
execute_process(COMMAND ${BIN} ${SCRIPT} RESULT_VARIABLE rc
  OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} exited with ${rc}\n${out}\n${err}")
endif()
if(NOT EXISTS ${expected_file})
  message(FATAL_ERROR "missing ${expected_file}")
endif()
file(READ ${expected_file} expected)
if(NOT out STREQUAL expected)
  message(FATAL_ERROR "${SCRIPT}: output differs\n--- expected\n${expected}--- got\n${out}")
endif()
