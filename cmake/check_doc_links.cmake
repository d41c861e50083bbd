# Fails when a relative link in the documentation points at nothing: every
# [text](target) in the given Markdown files whose target is not a URL must name an
# existing file or directory (relative to the page), and a `#fragment` on a Markdown
# target must match one of its headings (GitHub's anchor rule).
#
#   cmake -DROOT=<source dir> -DFILES="README.md;docs/*.md" -P check_doc_links.cmake

cmake_minimum_required(VERSION 3.20)

if(NOT DEFINED ROOT OR NOT DEFINED FILES)
  message(FATAL_ERROR "check_doc_links.cmake: -DROOT=... and -DFILES=... are required")
endif()

# The anchors of a Markdown file's headings, as GitHub makes them.
function(markdown_anchors file out)
  file(STRINGS "${file}" headings REGEX "^#+ ")
  set(anchors "")
  foreach(h IN LISTS headings)
    string(REGEX REPLACE "^#+ +" "" h "${h}")
    string(TOLOWER "${h}" h)
    string(REGEX REPLACE "[^a-z0-9 _-]" "" h "${h}")
    string(REPLACE " " "-" h "${h}")
    list(APPEND anchors "${h}")
  endforeach()
  set(${out} "${anchors}" PARENT_SCOPE)
endfunction()

set(pages "")
foreach(pattern IN LISTS FILES)
  file(GLOB matched "${ROOT}/${pattern}")
  list(APPEND pages ${matched})
endforeach()
if(NOT pages)
  message(FATAL_ERROR "check_doc_links.cmake: no file matches ${FILES}")
endif()

set(broken "")
set(checked 0)
foreach(page IN LISTS pages)
  get_filename_component(dir "${page}" DIRECTORY)
  file(RELATIVE_PATH page_name "${ROOT}" "${page}")
  file(READ "${page}" text)
  # Code spans and blocks may show link syntax that is not a link.
  string(REGEX REPLACE "```[^`]*```" "" text "${text}")
  string(REGEX REPLACE "`[^`\n]*`" "" text "${text}")
  # Square brackets would keep CMake's list splitting from seeing the semicolons.
  string(REPLACE "](" "@LINK@(" text "${text}")
  string(REPLACE "[" "" text "${text}")
  string(REPLACE "]" "" text "${text}")
  string(REGEX MATCHALL "@LINK@\\([^) \t\n]+\\)" links "${text}")
  foreach(link IN LISTS links)
    string(REGEX REPLACE "^@LINK@\\((.*)\\)$" "\\1" target "${link}")
    if(target MATCHES "^[a-z]+:")
      continue() # http:, https:, mailto:
    endif()
    math(EXPR checked "${checked} + 1")
    set(fragment "")
    if(target MATCHES "#")
      string(REGEX REPLACE "^[^#]*#" "" fragment "${target}")
      string(REGEX REPLACE "#.*$" "" target "${target}")
    endif()
    if(target STREQUAL "")
      set(path "${page}")
    else()
      set(path "${dir}/${target}")
    endif()
    if(NOT EXISTS "${path}")
      list(APPEND broken "${page_name}: (${target}) does not exist")
      continue()
    endif()
    if(NOT fragment STREQUAL "" AND path MATCHES "\\.md$" AND NOT IS_DIRECTORY "${path}")
      markdown_anchors("${path}" anchors)
      if(NOT fragment IN_LIST anchors)
        list(APPEND broken "${page_name}: (${target}#${fragment}) names no heading of ${target}")
      endif()
    endif()
  endforeach()
endforeach()

if(broken)
  list(JOIN broken "\n  " report)
  message(FATAL_ERROR "broken documentation links:\n  ${report}")
endif()
message(STATUS "${checked} relative documentation links resolve")
