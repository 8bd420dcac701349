# The embedded SQLite storage backend: the shared conformance suite plus persistence,
# crash durability and schema versioning (unit/store_sqlite_test.cpp).
prism_add_gtest(store_sqlite_test SOURCES unit/store_sqlite_test.cpp LIBS prism-host)
