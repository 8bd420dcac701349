# The secure transport without sockets: handshake state machines and two Channels over a
# simulated lossy link with a simulated clock (docs/protocol.md §5).
prism_add_gtest(channel_test SOURCES unit/channel_test.cpp LIBS prism-wire)
# SessionTable over a real uv loop with a capturing Outbox (docs/protocol.md §5).
prism_add_gtest(session_table_test SOURCES unit/session_table_test.cpp LIBS prism-host)
