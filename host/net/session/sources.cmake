# The secure transport's sessions (docs/protocol.md §5): handshake datagrams and the
# established-session state machine. In prism-wire: prismd and libprism-client share them.
target_sources(prism-wire PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/handshake.cpp
  ${CMAKE_CURRENT_LIST_DIR}/channel.cpp)
