# The Redis storage backend against throwaway redis-server instances: the shared
# conformance suite plus connection loss, recovery and durability.
prism_add_gtest(store_redis_test
  SOURCES unit/store_redis_test.cpp support/redis_server.cpp
  LIBS prism-host PkgConfig::HIREDIS)
target_include_directories(store_redis_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
