# The storage facade through prismd: durability across SIGKILL (sqlite, redis, postgres), a lost
# backend degrading and recovering, and bad store settings.
set(store_test_sources integration/store_test.cpp integration/prismd_process.cpp)
set(store_test_libs prism-client prism-host)
if(TARGET PkgConfig::HIREDIS)
  list(APPEND store_test_sources support/redis_server.cpp)
  list(APPEND store_test_libs PkgConfig::HIREDIS)
endif()
if(TARGET PkgConfig::PQXX)
  list(APPEND store_test_sources support/postgres_server.cpp)
endif()
prism_add_gtest(store_test SOURCES ${store_test_sources} LIBS ${store_test_libs})
if(TARGET PkgConfig::HIREDIS)
  target_compile_definitions(store_test PRIVATE PRISM_TEST_WITH_REDIS=1)
endif()
if(TARGET PkgConfig::PQXX)
  target_compile_definitions(store_test PRIVATE PRISM_TEST_WITH_POSTGRES=1)
endif()
target_include_directories(store_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(store_test prismd prismctl prism-test-plugins)

# `make bench` measures the practice service on sqlite and redis beside redis-benchmark
# (tests/bench/run_store_bench.sh); here a short smoke run proves the script still works.
if(TARGET prism-plugin-practice)
  add_test(NAME store_bench_smoke
    COMMAND ${CMAKE_COMMAND} -E env SMOKE=1 ${PROJECT_SOURCE_DIR}/tests/bench/run_store_bench.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(store_bench_smoke PROPERTIES TIMEOUT 180 ENVIRONMENT "${PRISM_TEST_ENV}")
endif()
