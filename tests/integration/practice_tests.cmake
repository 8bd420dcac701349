# The practice service (plugins/practice, docs/practice.md): its pure logic, the plugin in
# process over a real SQLite store, and end to end through a real prismd (including the
# practice-demo example run against it). Included from tests/CMakeLists.txt.
if(NOT TARGET prism-plugin-practice)
  return()
endif()

prism_add_gtest(practice_logic_test SOURCES unit/practice_logic_test.cpp LIBS prism-practice-logic)

prism_add_gtest(practice_service_test SOURCES unit/practice_service_test.cpp
  LIBS prism-host prism-proto-practice ${CMAKE_DL_LIBS})
add_dependencies(practice_service_test prism-plugin-practice)

prism_add_gtest(practice_test
  SOURCES integration/practice_test.cpp integration/prismd_process.cpp
  LIBS prism-client prism-host prism-proto-practice Threads::Threads)
add_dependencies(practice_test prismd prismctl prism-plugin-practice)
if(TARGET practice-demo)
  add_dependencies(practice_test practice-demo)
endif()
# Both suites build their requests with support/practice_requests.hpp.
target_include_directories(practice_service_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_include_directories(practice_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
