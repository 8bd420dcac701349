# The PostgreSQL storage backend: the shared conformance suite plus its own tests
# (migrations, connection loss, durability), each against a throwaway server.
# One ctest test for the whole binary: every process pays an initdb (about 2 s on a
# slow disk), so running the 71 cases in one process keeps `make test` short.
add_executable(store_postgres_test unit/store_postgres_test.cpp support/postgres_server.cpp)
target_compile_definitions(store_postgres_test PRIVATE ${PRISM_TEST_DEFINITIONS})
target_link_libraries(store_postgres_test PRIVATE prism-host GTest::gtest GTest::gtest_main)
target_include_directories(store_postgres_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME store_postgres_test COMMAND store_postgres_test)
set_tests_properties(store_postgres_test PROPERTIES
  ENVIRONMENT "${PRISM_TEST_ENV}" TIMEOUT 600 SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\].*postgres")
