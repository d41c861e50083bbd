# Fails when a page's code block drifts from the compiled example it shows.
#
#   cmake -DDOC=<README.md> -DEXAMPLE=<examples/readme.cpp> -P check_snippet.cmake
#
# The page marks the block with a line `<!-- snippet: examples/<name>.cpp -->` right
# before its ```cpp fence; the example marks the shown lines with two `// [snippet]`
# lines. The two texts must be equal, byte for byte.

foreach(var DOC EXAMPLE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_snippet.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${EXAMPLE}" example)
set(marker "// [snippet]\n")
string(FIND "${example}" "${marker}" first)
string(FIND "${example}" "${marker}" last REVERSE)
if(first EQUAL -1 OR first EQUAL last)
  message(FATAL_ERROR "${EXAMPLE}: expected two lines `// [snippet]` around the snippet")
endif()
string(LENGTH "${marker}" marker_length)
math(EXPR begin "${first} + ${marker_length}")
math(EXPR length "${last} - ${begin}")
string(SUBSTRING "${example}" ${begin} ${length} from_example)

file(READ "${DOC}" readme)
get_filename_component(example_name "${EXAMPLE}" NAME)
set(fence "<!-- snippet: examples/${example_name} -->\n```cpp\n")
string(FIND "${readme}" "${fence}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${DOC}: no code block introduced by `<!-- snippet: examples/${example_name} -->`")
endif()
string(LENGTH "${fence}" fence_length)
math(EXPR begin "${at} + ${fence_length}")
string(SUBSTRING "${readme}" ${begin} -1 rest)
string(FIND "${rest}" "```" end)
if(end EQUAL -1)
  message(FATAL_ERROR "${DOC}: the snippet's code block is not closed")
endif()
string(SUBSTRING "${rest}" 0 ${end} from_readme)

if(NOT from_readme STREQUAL from_example)
  message(FATAL_ERROR "The code block of ${DOC} differs from ${EXAMPLE} (copy the lines "
                      "between the `// [snippet]` markers into the page)\n"
                      "--- ${DOC} ---\n${from_readme}--- ${example_name} ---\n${from_example}--- end ---")
endif()
message(STATUS "the code block of ${DOC} matches ${EXAMPLE}")
