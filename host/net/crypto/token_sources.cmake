# Hashed service login tokens (plugins.d token_hash), shared by the host and its tools.
target_sources(prism-wire PRIVATE ${CMAKE_CURRENT_LIST_DIR}/token_hash.cpp)
