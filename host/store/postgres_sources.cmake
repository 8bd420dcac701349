# The PostgreSQL storage backend (DESIGN.md §6): libpqxx on a pool of worker threads,
# versioned schema migrations.
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET GLOBAL libpqxx libpq)
target_sources(prism-host PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/postgres_backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/postgres_leaderboards.cpp
  ${CMAKE_CURRENT_LIST_DIR}/postgres_pool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/postgres_migrations.cpp)
target_link_libraries(prism-host PUBLIC PkgConfig::PQXX)
target_compile_definitions(prism-host PRIVATE PRISM_HAVE_POSTGRES_STORE=1)
