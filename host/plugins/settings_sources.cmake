# Per-plugin configuration files (plugins.d/<name>.yaml) and the LOGIN decision built on them.
target_sources(prism-host PRIVATE ${CMAKE_CURRENT_LIST_DIR}/plugin_settings.cpp ${CMAKE_CURRENT_LIST_DIR}/login_guard.cpp)
