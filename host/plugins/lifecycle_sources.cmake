# Plugin lifecycle (DESIGN.md §5): private copies of plugin files and the plugins_dir watch.
target_sources(prism-host PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/plugin_copy.cpp
  ${CMAKE_CURRENT_LIST_DIR}/directory_watch.cpp)
