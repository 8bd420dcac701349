# The Redis storage backend (DESIGN.md §6): hiredis, asynchronous on libuv.
# GLOBAL: the imported target must resolve for the tests that link it directly.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET GLOBAL hiredis)
target_sources(prism-host PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/redis_backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/redis_connection.cpp
  ${CMAKE_CURRENT_LIST_DIR}/redis_script.cpp)
target_link_libraries(prism-host PRIVATE PkgConfig::HIREDIS)
target_compile_definitions(prism-host PRIVATE PRISM_HAVE_REDIS_STORE=1)
