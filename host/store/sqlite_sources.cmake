# The storage facade's shared argument checks and the embedded SQLite backend (DESIGN.md §6):
# one database file in WAL mode, always built. GLOBAL: the imported target must resolve for
# consumers outside host/ (the tests open the file directly to check the schema).
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET GLOBAL sqlite3)
target_sources(prism-host PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/validate.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sqlite_backend.cpp)
target_link_libraries(prism-host PUBLIC PkgConfig::SQLITE3)
# The facets prismd opens from prism.yaml `store`.
target_sources(prism-host PRIVATE ${CMAKE_CURRENT_LIST_DIR}/storage.cpp)
