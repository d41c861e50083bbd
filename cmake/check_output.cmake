# Runs a program and compares its standard output with an expected file, byte for
# byte; fails on a non-zero exit status or any difference.
#
#   cmake -DPROGRAM=<executable> -DEXPECTED=<file> -P check_output.cmake
#
# Used by examples/CMakeLists.txt for examples whose output is part of their contract.

foreach(var PROGRAM EXPECTED)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_output.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${EXPECTED}" expected)
execute_process(COMMAND "${PROGRAM}"
                OUTPUT_VARIABLE actual
                ERROR_VARIABLE errors
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${status}\nstderr:\n${errors}")
endif()
if(NOT actual STREQUAL expected)
  message(FATAL_ERROR "${PROGRAM}: unexpected output\n--- expected ---\n${expected}--- actual ---\n${actual}--- end ---")
endif()
message(STATUS "${PROGRAM}: output matches ${EXPECTED}")
