# Plugin lifecycle (DESIGN.md §5): hot reload at the registry, plugins.d settings, and the
# plugins_dir watch driven by a real libuv loop.
prism_add_gtest(reload_test SOURCES unit/reload_test.cpp unit/directory_watch_test.cpp
  LIBS prism-host)
add_dependencies(reload_test prism-test-plugins)

# A real prismd whose plugins dir is rewritten 20 times under load (needs prismd to run the
# directory watch).
prism_add_gtest(reload_integration_test
  SOURCES integration/reload_test.cpp integration/prismd_process.cpp
  LIBS prism-client prism-host Threads::Threads)
add_dependencies(reload_integration_test prismd prism-test-plugins)
